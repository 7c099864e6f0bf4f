"""Results table and gap-closed arithmetic."""

from __future__ import annotations

import pytest

import torch

from simgan_toolkit.report import (
    NOISE_DEFINITION,
    SEED_NOISE_DEFINITION,
    format_results_table,
    full_effect_line,
    gap_closed,
    paired_test_noise,
    refinement_verdict,
    verdict_line,
)


def test_gap_closed_lower_is_better():
    # synthetic 10 deg, oracle 6 deg, refined 8 deg: (8 - 10) / (6 - 10) = 0.5
    assert gap_closed(10.0, 8.0, 6.0) == pytest.approx(0.5)
    assert gap_closed(10.0, 6.0, 6.0) == pytest.approx(1.0)
    assert gap_closed(10.0, 10.0, 6.0) == pytest.approx(0.0)
    assert gap_closed(10.0, 11.0, 6.0) == pytest.approx(-0.25)  # worse than synthetic


def test_gap_closed_higher_is_better():
    # synthetic 50 %, oracle 80 %, refined 65 %: 15 / 30 = 0.5
    assert gap_closed(50.0, 65.0, 80.0) == pytest.approx(0.5)
    assert gap_closed(50.0, 86.0, 80.0) == pytest.approx(1.2)  # beyond the oracle


def test_gap_closed_no_gap():
    assert gap_closed(3.0, 2.0, 3.0) is None


def test_gap_closed_is_none_when_the_oracle_is_not_better_given_the_direction():
    # PCK: synthetic 23.5, oracle 23.3 -> no gap to close (without the direction: 550 %)
    assert gap_closed(23.5, 22.4, 23.3, lower_is_better=False) is None
    assert gap_closed(23.5, 22.4, 23.3) == pytest.approx(5.5)
    # errors: oracle 12 above synthetic 10 -> none either; the right way round, as before
    assert gap_closed(10.0, 8.0, 12.0, lower_is_better=True) is None
    assert gap_closed(10.0, 8.0, 6.0, lower_is_better=True) == pytest.approx(0.5)
    assert gap_closed(50.0, 65.0, 80.0, lower_is_better=False) == pytest.approx(0.5)


def test_table_shows_no_gap_closed_when_the_oracle_trails_synthetic():
    est = {"synthetic": {"err": 5.0}, "refined": {"err": 4.0}, "target": {"err": 6.0}}
    rows = format_results_table(_summary(estimators=est)).splitlines()[3:6]
    assert [r.split()[-2] for r in rows] == ["-", "-", "-"]


def _summary(**over):
    s = {
        "task": "gaze",
        "profile": "smoke",
        "device": "cpu",
        "wall_seconds": 12.4,
        "primary_metric": {"name": "err", "lower_is_better": True, "unit": "deg"},
        "estimators": {
            "target": {"err": 6.0, "acc": 90.0},
            "synthetic": {"err": 10.0, "acc": 50.0},
            "refined": {"err": 8.0, "acc": 70.0},
        },
        "label_preservation": {"shift": 0.1234},
    }
    s.update(over)
    return s


def test_table_contains_rows_in_order_with_gap():
    text = format_results_table(_summary())
    lines = text.splitlines()
    assert lines[0] == "Results: task 'gaze', profile 'smoke', cpu, 12 s; scored on the target test set"
    assert lines[1].split("  ")[0].strip() == "trained on"
    assert "gap closed (err)" in lines[1]
    assert set(lines[2]) <= {"-", " "}
    rows = lines[3:6]
    assert rows[0].startswith("synthetic") and rows[1].startswith("refined (SimGAN)") and rows[2].startswith("labelled target (oracle)")
    assert rows[0].split() == ["synthetic", "10.000", "50.000", "0%", "1"]
    assert rows[1].split()[-4:] == ["8.000", "70.000", "50%", "1"]
    assert rows[2].split()[-4:] == ["6.000", "90.000", "100%", "1"]
    assert lines[6] == "label preservation: shift = 0.123"
    # Columns are aligned: every cell of the last column starts under its header.
    col = lines[1].index("gap closed")
    assert [r[col:].split()[0] for r in rows] == ["0%", "50%", "100%"]
    assert all(r[col - 2 : col] == "  " for r in rows)


def test_table_without_oracle_has_no_gap_column_and_extra_rows_last():
    est = {"custom": {"err": 1.0}, "refined": {"err": 2.0}, "synthetic": {"err": 3.0}}
    text = format_results_table(_summary(estimators=est, label_preservation={}))
    assert "gap closed" not in text and "label preservation" not in text
    rows = [l.split()[0] for l in text.splitlines()[3:6]]
    assert rows == ["synthetic", "refined", "custom"]
    assert text.splitlines()[6].startswith("Verdict: ")


def test_table_no_gap_shows_dash():
    est = {"synthetic": {"err": 5.0}, "refined": {"err": 4.0}, "target": {"err": 5.0}}
    text = format_results_table(_summary(estimators=est))
    assert text.splitlines()[3].split()[-2] == "-"


def test_table_shows_means_over_estimator_seeds_and_their_count():
    est = {"synthetic": {"err": 10.0}, "refined": {"err": 8.0}, "target": {"err": 6.0}}
    per_seed = {"synthetic": [{"err": 10.0}, {"err": 12.0}], "refined": [{"err": 8.0}, {"err": 7.0}], "target": [{"err": 6.0}]}
    rows = format_results_table(_summary(estimators=est, estimators_per_seed=per_seed)).splitlines()[3:6]
    # Means: synthetic 11, refined 7.5, oracle 6 -> gap closed (7.5 - 11) / (6 - 11) = 70 %.
    assert rows[0].split() == ["synthetic", "11.000", "0%", "2"]
    assert rows[1].split()[-3:] == ["7.500", "70%", "2"]
    assert rows[2].split()[-3:] == ["6.000", "100%", "1"]


# ---------------------------------------------------------------- refinement verdict


def test_verdict_helped_lower_is_better():
    # synthetic 10, 12 (mean 11, spread 2); refined 8, 8.5 (mean 8.25, spread 0.5):
    # improvement 11 - 8.25 = 2.75 > noise max(2, 0.5) = 2
    v = refinement_verdict([10.0, 12.0], [8.0, 8.5], lower_is_better=True)
    assert v["verdict"] == "helped"
    assert (v["synthetic_mean"], v["refined_mean"]) == (11.0, 8.25)
    assert v["improvement"] == pytest.approx(2.75) and v["noise"] == pytest.approx(2.0)
    assert (v["synthetic"], v["refined"], v["noise_definition"]) == ([10.0, 12.0], [8.0, 8.5], SEED_NOISE_DEFINITION)
    assert (v["seed_noise"], v["test_noise"]) == (2.0, None)


def test_verdict_not_beyond_noise():
    # improvement 11 - 9.5 = 1.5 <= noise 2 (the synthetic row's spread)
    assert refinement_verdict([10.0, 12.0], [9.0, 10.0], lower_is_better=True)["verdict"] == "not beyond noise"
    # exactly the noise is not beyond it: 11 - 9 = 2 = noise
    assert refinement_verdict([10.0, 12.0], [9.0, 9.0], lower_is_better=True)["verdict"] == "not beyond noise"
    # the refined row's spread counts too: improvement 3, noise max(0, 4) = 4
    assert refinement_verdict([11.0, 11.0], [6.0, 10.0], lower_is_better=True)["verdict"] == "not beyond noise"


def test_verdict_worse():
    # refined mean 14 vs synthetic 11: improvement -3 < -noise (2)
    v = refinement_verdict([10.0, 12.0], [13.5, 14.5], lower_is_better=True)
    assert v["verdict"] == "worse" and v["improvement"] == pytest.approx(-3.0)


def test_verdict_higher_is_better_reverses_the_sign():
    # PCK-like: synthetic 50, 52 (mean 51); refined 60, 61 (mean 60.5): improvement +9.5 > noise 2
    assert refinement_verdict([50.0, 52.0], [60.0, 61.0], lower_is_better=False)["verdict"] == "helped"
    # the same numbers read as errors: refinement made it worse
    assert refinement_verdict([50.0, 52.0], [60.0, 61.0], lower_is_better=True)["verdict"] == "worse"


def test_verdict_three_seeds_noise_is_max_minus_min():
    # synthetic spread 13 - 10 = 3, refined 7.5 - 6 = 1.5; improvement 11.5 - 6.75 = 4.75 > 3
    v = refinement_verdict([10.0, 13.0, 11.5], [6.0, 7.5, 6.75], lower_is_better=True)
    assert v["noise"] == pytest.approx(3.0) and v["verdict"] == "helped"


def test_verdict_one_seed_makes_no_call():
    v = refinement_verdict([10.0], [5.0], lower_is_better=True)
    assert v == {"synthetic": [10.0], "refined": [5.0], "noise_definition": SEED_NOISE_DEFINITION, "verdict": "one seed"}


def _t(*values):
    return torch.tensor(values)


def test_paired_test_noise_by_hand():
    # per image, mean over seeds: synthetic [2, 2, 2, 4], refined [1, 1, 1, 2] -> d = [-1, -1, -1, -2]
    # std(d) (n - 1) = sqrt((3 * 0.25**2 + 0.75**2) / 3) = 0.5 -> 1.96 * 0.5 / sqrt(4) = 0.49
    synthetic = [_t(1.0, 2.0, 3.0, 4.0), _t(3.0, 2.0, 1.0, 4.0)]
    refined = [_t(0.0, 1.0, 1.0, 2.0), _t(2.0, 1.0, 1.0, 2.0)]
    assert paired_test_noise(synthetic, refined) == pytest.approx(0.49)
    # paired: a constant shift between the rows has no test noise, however spread the images are
    assert paired_test_noise([_t(0.0, 10.0, 50.0)], [_t(1.0, 11.0, 51.0)]) == pytest.approx(0.0)
    assert paired_test_noise([_t(3.0)], [_t(1.0)]) == 0.0  # one image: no estimate


def test_verdict_noise_is_the_larger_of_seed_spread_and_test_noise():
    # seeds agree exactly (seed noise 0): synthetic means 2, 2; refined 1, 1: improvement 1.
    # d = [0, 0, 0, -4]: std 2 -> test noise 1.96 * 2 / 2 = 1.96 > 1: no call
    synthetic, refined = [_t(0.0, 0.0, 0.0, 8.0)] * 2, [_t(0.0, 0.0, 0.0, 4.0)] * 2
    v = refinement_verdict([2.0, 2.0], [1.0, 1.0], True, (synthetic, refined))
    assert v["verdict"] == "not beyond noise" and v["noise_definition"] == NOISE_DEFINITION
    assert (v["seed_noise"], v["test_noise"], v["noise"]) == (0.0, pytest.approx(1.96), pytest.approx(1.96))
    assert refinement_verdict([2.0, 2.0], [1.0, 1.0], True)["verdict"] == "helped"  # seeds alone would call it
    # the seeds' spread wins when it is the larger: by-hand case above, seed noise 0.5 > test noise 0.49
    v = refinement_verdict([2.5, 2.5], [1.0, 1.5], True, ([_t(1.0, 2.0, 3.0, 4.0), _t(3.0, 2.0, 1.0, 4.0)],
                                                          [_t(0.0, 1.0, 1.0, 2.0), _t(2.0, 1.0, 1.0, 2.0)]))
    assert v["noise"] == 0.5 and v["test_noise"] == pytest.approx(0.49) and v["verdict"] == "helped"


def test_verdict_line_names_both_noises_when_the_task_gives_per_image_metrics():
    synthetic, refined = [_t(0.0, 0.0, 0.0, 8.0)] * 2, [_t(0.0, 0.0, 0.0, 4.0)] * 2
    summary = _summary(refinement_verdict=refinement_verdict([2.0, 2.0], [1.0, 1.0], True, (synthetic, refined)),
                       estimator_seeds=[0, 1])
    assert verdict_line(summary) == (
        "Verdict: refinement did not help beyond the noise: err refined 1.000 vs synthetic 2.000 (lower is better; "
        "means over estimator seeds [0, 1]); noise = 1.960, the larger of the estimator seeds' spread (0.000) and the "
        "test set's 95 % half-width (1.960).")


def _verdict_summary(synthetic, refined, lower=True, **over):
    return _summary(primary_metric={"name": "err", "lower_is_better": lower, "unit": "deg"},
                    refinement_verdict=refinement_verdict(synthetic, refined, lower), estimator_seeds=[0, 1],
                    sample_grid="samples/step_000200.png", figures=["pck_curve.png"], **over)


def test_verdict_line_states_the_call_the_noise_and_what_to_look_at():
    line = verdict_line(_verdict_summary([10.0, 12.0], [8.0, 8.5]))
    assert line == ("Verdict: refinement helped beyond the noise: err refined 8.250 vs synthetic 11.000 "
                    "(lower is better; means over estimator seeds [0, 1]); noise = the larger max-min spread over "
                    "estimator seeds of the two rows = 2.000. Look at samples/step_000200.png, pck_curve.png in the run folder.")
    assert verdict_line(_verdict_summary([10.0, 12.0], [9.0, 10.0])).startswith("Verdict: refinement did not help beyond the noise: ")
    worse = verdict_line(_verdict_summary([50.0, 52.0], [40.0, 41.0], lower=False))
    assert worse.startswith("Verdict: refinement made the estimator worse beyond the noise: err refined 40.500 vs synthetic 51.000 (higher is better")


def test_verdict_line_when_not_measured():
    one = verdict_line(_summary(refinement_verdict=refinement_verdict([1.0], [2.0], True), sample_grid="samples/step_000010.png"))
    assert one == ("Verdict: not measured (estimator.seeds = 1: one estimator seed per row gives no estimate of the noise; "
                   "set estimator.seeds = 2 or more). Look at samples/step_000010.png in the run folder.")
    assert verdict_line(_summary()) == "Verdict: not measured (needs 'synthetic' and 'refined' in estimator.train_on)."


def test_table_ends_with_the_verdict_line_and_after_a_default_run_the_full_effect_profile():
    summary = _verdict_summary([10.0, 12.0], [8.0, 8.5], profile="default", full_effect_profile="paper")
    lines = format_results_table(summary).splitlines()
    assert lines[-2] == verdict_line(summary)
    assert lines[-1] == "Profile 'default' is sized for a quick run; task 'gaze' shows the full effect of refinement with --profile paper."


@pytest.mark.parametrize(("profile", "full"), [("smoke", "paper"), ("paper", "paper"), ("default", None), ("default", "default")])
def test_no_full_effect_line_unless_a_default_run_of_a_task_that_names_another_profile(profile, full):
    summary = _summary(profile=profile, full_effect_profile=full)
    assert full_effect_line(summary) is None
    assert format_results_table(summary).splitlines()[-1].startswith("Verdict: ")
