"""benchmarks.sim2real: which images and which transform each row's estimators train on.

SimGAN and the estimators are faked (see ``fake_sim2real``); score_row and the row logic are real.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from benchmarks import scoring, sim2real
from benchmarks.refining import RefinerRun
from benchmarks.sim2real import run_sim2real

ROWS = ["synthetic", "synthetic + Gaussian noise", "synthetic + kornia photometric", "refined (SimGAN)",
        "refined + kornia photometric", "synthetic 2x", "refined 2x", "labelled target (oracle)"]


@pytest.fixture
def fake_sim2real(monkeypatch):
    """Refiner k adds ``k + 1`` to every synthetic image; an estimator "model" remembers its
    training images' first value, its seed and its transform, and scores ``err`` = that value.
    ``kornia_photometric`` and ``gaussian_noise`` return named markers instead of transforms."""
    models: list[SimpleNamespace] = []

    def train_one(ctx, train, seed, transform=None):
        models.append(SimpleNamespace(fill=float(train.images.flatten()[0]), seed=seed, transform=transform, n=len(train)))
        return models[-1]

    def train_refiner(ctx, variant, overrides, seed_index=0, *, n_refine=None, synthetic_estimator=None):
        refined = ctx.synthetic.images[:n_refine] + seed_index + 1
        return RefinerRun(variant, ctx.config.seed + seed_index, refined, {}, 0.0, {})

    monkeypatch.setattr(scoring, "train_one", train_one)
    monkeypatch.setattr(scoring, "evaluate_estimator", lambda task, model, test: {"err": model.fill})
    monkeypatch.setattr(sim2real, "train_refiner", train_refiner)
    monkeypatch.setattr(sim2real, "choose_noise_sigma", lambda ctx: {"sigma": 0.1, "validation": {"0.1": 1.0}})
    monkeypatch.setattr(sim2real, "kornia_photometric", lambda spec: "kornia")
    monkeypatch.setattr(sim2real, "gaussian_noise", lambda sigma, spec: f"noise {sigma}")
    return models


def _by_row(models: list[SimpleNamespace], seeds: int) -> dict[str, list[SimpleNamespace]]:
    """The models in training order, ``seeds`` per row, keyed by row name."""
    assert len(models) == seeds * len(ROWS)
    return {row: models[i * seeds : (i + 1) * seeds] for i, row in enumerate(ROWS)}


def test_refined_plus_kornia_stacks_the_kornia_row_on_the_refined_rows_images(fake_ctx, fake_sim2real):
    # higher is better: the fake oracle (0.25) beats the fake synthetic set (0.0), so there is a gap
    ctx = fake_ctx(seeds=3, simgan_seeds=3, lower_is_better=False)
    rows, artefacts = run_sim2real(ctx)
    assert list(rows) == ROWS
    trained = _by_row(fake_sim2real, 3)
    # estimator seed k trains on refiner k's images (synthetic 0.0 + k + 1)
    assert [(m.seed, m.fill, m.transform) for m in trained["refined (SimGAN)"]] == [(10, 1.0, None), (11, 2.0, None), (12, 3.0, None)]
    # the new row: the same images, with the transform of the "synthetic + kornia photometric" row
    assert [(m.seed, m.fill, m.transform) for m in trained["refined + kornia photometric"]] == [
        (10, 1.0, "kornia"), (11, 2.0, "kornia"), (12, 3.0, "kornia")]
    assert [m.transform for m in trained["synthetic + kornia photometric"]] == ["kornia"] * 3
    assert rows["refined + kornia photometric"]["n_train"] == ctx.n_base
    assert rows["refined + kornia photometric"]["mean"]["err"] == pytest.approx(2.0)
    # gap closed on the same scale as every row: synthetic 0.0, oracle 0.25 (the target_train split's fill)
    assert rows["refined + kornia photometric"]["gap_closed"] == pytest.approx(2.0 / 0.25)
    assert [r.seed for r in artefacts["runs"]] == [10, 11, 12]
    assert "  refined + kornia photometric: err 2.000 +- 1.000" in ctx.said


def test_one_refiner_serves_every_estimator_seed(fake_ctx, fake_sim2real):
    ctx = fake_ctx(seeds=2, simgan_seeds=1)
    run_sim2real(ctx)
    trained = _by_row(fake_sim2real, 2)
    for row in ("refined (SimGAN)", "refined + kornia photometric", "refined 2x"):
        assert [m.fill for m in trained[row]] == [1.0, 1.0], row
    assert [m.n for m in trained["refined 2x"]] == [8, 8]
