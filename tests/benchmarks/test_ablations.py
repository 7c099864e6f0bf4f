"""benchmarks.ablations: the variant list of a suite, and how run_ablations assembles its rows."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from benchmarks import ablations
from benchmarks.ablations import GROUPS, run_ablations, variants
from benchmarks.refining import RefinerRun
from benchmarks.suites import SUITES, Suite
from simgan_toolkit.config import build_config
from simgan_toolkit.task import ImageSpec


@pytest.fixture(scope="module")
def gaze_profiles(registry):
    return registry.create("task", "gaze").profiles()


@pytest.fixture
def ctx_for(gaze_profiles):
    """``ctx_for(suite, *overrides, channels=3)``: a namespace with the gaze smoke config (plus
    overrides), ``suite`` and a task whose images have ``channels`` channels."""

    def make(suite: Suite, *overrides: str, channels: int = 3) -> SimpleNamespace:
        task = SimpleNamespace(image_spec=ImageSpec(channels, 35, 55))
        return SimpleNamespace(config=build_config("gaze", "smoke", gaze_profiles, overrides=list(overrides)), suite=suite, task=task)

    return make


def test_smoke_config_is_what_these_tests_assume(ctx_for):
    cfg = ctx_for(Suite("t", "smoke")).config
    assert (cfg.train.history, cfg.discriminator.name, cfg.feature.name, cfg.train.lam, cfg.train.k_g) == (True, "local", "identity", 0.5, 2)


def test_variants_of_every_group_skip_the_configs_own_values(ctx_for):
    suite = Suite("t", "smoke", ablations=GROUPS, lam_sweep=(0.1, 0.5, 2.0), k_g_values=(1, 2, 4))
    assert variants(ctx_for(suite)) == [
        ("history", "no history buffer", ["train.history=false"]),
        ("discriminator", "global discriminator", ["discriminator.name='global'"]),
        ("feature", "psi = channel_mean", ["feature.name='channel_mean'"]),
        ("feature", "psi = gradients", ["feature.name='gradients'"]),
        ("feature", "psi = learned", ["feature.name='learned'"]),
        ("lam", "lambda = 0.1", ["train.lam=0.1"]),
        ("lam", "lambda = 2", ["train.lam=2.0"]),
        ("k_g", "K_g = 1", ["train.k_g=1"]),
        ("k_g", "K_g = 4", ["train.k_g=4"]),
    ]


def test_variants_follow_the_config_not_the_defaults(ctx_for):
    suite = Suite("t", "smoke", ablations=GROUPS, lam_sweep=(0.5, 2.0), k_g_values=(2, 3))
    ctx = ctx_for(suite, "train.history=false", "discriminator.name='global'", "feature.name='gradients'", "train.lam=2.0", "train.k_g=3")
    assert variants(ctx) == [
        ("discriminator", "local discriminator", ["discriminator.name='local'"]),
        ("feature", "psi = identity", ["feature.name='identity'"]),
        ("feature", "psi = channel_mean", ["feature.name='channel_mean'"]),
        ("feature", "psi = learned", ["feature.name='learned'"]),
        ("lam", "lambda = 0.5", ["train.lam=0.5"]),
        ("k_g", "K_g = 2", ["train.k_g=2"]),
    ]


def test_variants_only_of_the_groups_asked_for(ctx_for):
    suite = Suite("t", "smoke", ablations=("k_g", "history"), lam_sweep=(0.1,), k_g_values=(1,))
    assert variants(ctx_for(suite)) == [("history", "no history buffer", ["train.history=false"]), ("k_g", "K_g = 1", ["train.k_g=1"])]
    assert variants(ctx_for(Suite("t", "smoke", ablations=()))) == []


def test_variants_of_sweeps_equal_to_the_config_are_empty(ctx_for):
    suite = Suite("t", "smoke", ablations=("lam", "k_g"), lam_sweep=(0.5,), k_g_values=(2,))
    assert variants(ctx_for(suite)) == []


def test_tiny_suite_variants_on_gaze(ctx_for):
    names = [name for _, name, _ in variants(ctx_for(SUITES["tiny"], channels=1))]
    # tiny's K_g value 2 is the smoke profile's own: no K_g row; grayscale: no channel-mean row
    assert names == ["no history buffer", "global discriminator", "psi = gradients", "psi = learned", "lambda = 2"]


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        ("identity", ["gradients", "learned"]),  # channel mean = identity on one channel
        ("channel_mean", ["gradients", "learned"]),  # and the other way round
        ("gradients", ["identity", "learned"]),  # identity and channel mean: one row, not two
    ],
)
def test_one_channel_images_get_one_row_for_identity_and_channel_mean(ctx_for, configured, expected):
    suite = Suite("t", "smoke", ablations=("feature",))
    rows = variants(ctx_for(suite, f"feature.name='{configured}'", channels=1))
    assert [name for _, name, _ in rows] == [f"psi = {f}" for f in expected]


@pytest.mark.parametrize("bad", [("history", "dropout"), ("Lam",)])
def test_variants_reject_unknown_groups(ctx_for, bad):
    with pytest.raises(ValueError, match="unknown ablation groups") as info:
        variants(ctx_for(Suite("t", "smoke", ablations=bad)))
    assert repr(sorted(set(bad) - set(GROUPS))) in str(info.value)


def test_every_variant_override_is_a_valid_config_change(ctx_for, gaze_profiles):
    suite = Suite("t", "smoke", ablations=GROUPS, lam_sweep=(0.1, 2.0), k_g_values=(1, 4))
    base = ctx_for(suite).config
    for _, name, overrides in variants(ctx_for(suite)):
        changed = build_config("gaze", "smoke", gaze_profiles, overrides=overrides)
        assert changed != base, name


# ---------------------------------------------------------------- run_ablations (training faked)


@pytest.fixture
def fake_refining(monkeypatch):
    """train_refiner and score_row replaced: a run's images are the base synthetic set + k + 1;
    a row's primary-metric mean is read off a table by variant name."""
    calls = {"train": [], "score": []}
    means = {"no history buffer": 4.0, "lambda = 2": 6.0}

    def train_refiner(ctx, variant, overrides, seed_index=0, *, n_refine=None, synthetic_estimator=None):
        calls["train"].append((variant, overrides, seed_index, synthetic_estimator))
        refined = ctx.base_synthetic().images + seed_index + 1
        return RefinerRun(variant, ctx.config.seed + seed_index, refined, {}, 0.0, {"p": 1.0})

    def score_row(ctx, sets, seeds=None):
        calls["score"].append(sets)
        calls.setdefault("seeds", []).append(seeds)
        value = means[calls["train"][-1][0]]
        return {"per_seed": [{"err": value}], "mean": {"err": value}, "std": {"err": 0.0}}

    monkeypatch.setattr(ablations, "train_refiner", train_refiner)
    monkeypatch.setattr(ablations, "score_row", score_row)
    return calls


def _ablation_ctx(fake_ctx, ctx_for, *overrides, ablation_seeds=None):
    ctx = fake_ctx(metric="err", simgan_seeds=2, ablation_seeds=ablation_seeds)
    real = ctx_for(Suite("t", "smoke", ablations=("history", "lam"), lam_sweep=(2.0,)), *overrides)
    ctx.config, ctx.suite.ablations, ctx.suite.lam_sweep = real.config, real.suite.ablations, real.suite.lam_sweep
    return ctx


def _sim2real(refined_mean: float = 8.0):
    row = lambda m: {"per_seed": [{"err": m}], "mean": {"err": m}, "std": {"err": 0.0}, "n_train": 4}
    return {"synthetic": row(10.0), "refined (SimGAN)": row(refined_mean), "labelled target (oracle)": row(2.0)}


def test_run_ablations_rows_refiners_and_gap(fake_ctx, ctx_for, fake_refining):
    ctx = _ablation_ctx(fake_ctx, ctx_for)
    estimator = object()
    rows, runs = run_ablations(ctx, _sim2real(), {"synthetic_models": [estimator, object()]})
    reference = "SimGAN, as configured (local D, psi = identity, lambda = 0.5, K_g = 2)"
    assert list(rows) == [reference, "no history buffer", "lambda = 2"]
    assert rows[reference]["group"] == "reference" and rows[reference]["mean"] == {"err": 8.0}
    assert rows["no history buffer"]["group"] == "history" and rows["no history buffer"]["overrides"] == ["train.history=false"]
    assert rows["lambda = 2"]["group"] == "lam" and rows["lambda = 2"]["n_train"] == 4
    # gap closed against the sim-to-real synthetic (10) and oracle (2) rows: (10 - m) / 8
    assert rows[reference]["gap_closed"] == pytest.approx(0.25)
    assert rows["no history buffer"]["gap_closed"] == pytest.approx(0.75)
    assert rows["lambda = 2"]["gap_closed"] == pytest.approx(0.5)
    # simgan_seeds refiners per variant, each given the synthetic estimator (for psi = learned)
    assert [(v, k) for v, _, k, _ in fake_refining["train"]] == [
        ("no history buffer", 0), ("no history buffer", 1), ("lambda = 2", 0), ("lambda = 2", 1)]
    assert all(e is estimator for *_, e in fake_refining["train"])
    assert len(rows["lambda = 2"]["refiners"]) == 2
    # one training set per refiner, with the synthetic labels
    sets = fake_refining["score"][0]
    assert [float(s.images.mean()) for s in sets] == [1.0, 2.0]
    assert torch.equal(sets[0].labels["y"], ctx.base_synthetic().labels["y"])
    # the seed-0 run of each variant goes to the realism part
    assert [(r.variant, r.seed) for r in runs] == [("no history buffer", ctx.config.seed), ("lambda = 2", ctx.config.seed)]


def test_run_ablations_reference_row_names_the_configured_discriminator(fake_ctx, ctx_for, fake_refining):
    ctx = _ablation_ctx(fake_ctx, ctx_for, "discriminator.name='global'")
    rows, _ = run_ablations(ctx, _sim2real(), {"synthetic_models": [object()]})
    reference = next(iter(rows))
    assert "local D" not in reference, reference  # the ablation row of this config is "local discriminator"


def test_ablation_rows_and_reference_share_the_first_ablation_seeds(fake_ctx, ctx_for, fake_refining):
    ctx = _ablation_ctx(fake_ctx, ctx_for, ablation_seeds=2)
    sim2real = _sim2real()
    sim2real["refined (SimGAN)"] = {"per_seed": [{"err": 7.0}, {"err": 9.0}, {"err": 20.0}], "mean": {"err": 12.0},
                                    "std": {"err": 7.0}, "n_train": 4}
    rows, _ = run_ablations(ctx, sim2real, {"synthetic_models": [object()]})
    reference = rows[next(iter(rows))]
    # seeds 0 and 1 of the sim-to-real refined row: mean 8, sample std sqrt(2)
    assert reference["per_seed"] == [{"err": 7.0}, {"err": 9.0}]
    assert reference["mean"]["err"] == pytest.approx(8.0) and reference["std"]["err"] == pytest.approx(2**0.5)
    assert reference["gap_closed"] == pytest.approx(0.25)
    assert fake_refining["seeds"] == [2, 2]  # every ablation row scored over 2 seeds
    assert sim2real["refined (SimGAN)"]["mean"]["err"] == 12.0  # the sim-to-real row is left alone
    assert ctx.said[0].endswith("ablations (2 seeds)")


def test_ablation_seeds_default_to_all_seeds(fake_ctx, ctx_for, fake_refining):
    ctx = _ablation_ctx(fake_ctx, ctx_for)
    rows, _ = run_ablations(ctx, _sim2real(), {"synthetic_models": [object()]})
    assert fake_refining["seeds"] == [ctx.suite.seeds] * 2


def test_ablation_rows_train_no_refiner_that_no_ablation_seed_uses(fake_ctx, ctx_for, fake_refining):
    """quick: 3 refiner seeds for the sim-to-real rows, 2 estimator seeds per ablation row: 2
    refiners per ablation row, estimator seed k on refiner k."""
    ctx = _ablation_ctx(fake_ctx, ctx_for, ablation_seeds=2)
    ctx.suite.simgan_seeds, ctx.suite.seeds = 3, 3
    rows, _ = run_ablations(ctx, _sim2real(), {"synthetic_models": [object()]})
    assert [(v, k) for v, _, k, _ in fake_refining["train"]] == [
        ("no history buffer", 0), ("no history buffer", 1), ("lambda = 2", 0), ("lambda = 2", 1)]
    assert [float(s.images.mean()) for s in fake_refining["score"][0]] == [1.0, 2.0]
    assert len(rows["no history buffer"]["refiners"]) == 2


def test_ablation_simgan_seeds_caps_the_refiners_per_ablation_row(fake_ctx, ctx_for, fake_refining):
    """quick: one refiner per ablation row, both estimator seeds trained on its images."""
    ctx = _ablation_ctx(fake_ctx, ctx_for, ablation_seeds=2)
    ctx.suite.simgan_seeds, ctx.suite.seeds, ctx.suite.ablation_simgan_seeds = 3, 3, 1
    rows, _ = run_ablations(ctx, _sim2real(), {"synthetic_models": [object()]})
    assert [(v, k) for v, _, k, _ in fake_refining["train"]] == [("no history buffer", 0), ("lambda = 2", 0)]
    assert [float(s.images.mean()) for s in fake_refining["score"][0]] == [1.0]
    assert len(rows["no history buffer"]["refiners"]) == 1


def test_quick_suite_shares_one_refiner_per_ablation_row():
    from benchmarks.suites import get_suite

    quick = get_suite("quick")
    assert (quick.simgan_seeds, quick.ablation_simgan_seeds, quick.ablation_seeds) == (3, 1, 2)
