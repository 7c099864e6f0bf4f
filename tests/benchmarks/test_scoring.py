"""benchmarks.scoring: aggregation over seeds, "better", and how score_row trains and scores."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from benchmarks import scoring
from benchmarks.scoring import aggregate, better, score_row
from simgan_toolkit.task import MetricSpec


def test_aggregate_mean_and_sample_std_by_hand():
    per_seed = [{"err": 1.0, "acc": 10.0}, {"err": 2.0, "acc": 10.0}, {"err": 6.0, "acc": 40.0}]
    out = aggregate(per_seed)
    # err: mean 3; squared deviations 4 + 1 + 9 = 14; sample variance 14 / 2 = 7.
    # acc: mean 20; squared deviations 100 + 100 + 400 = 600; sample variance 300.
    assert out["mean"] == pytest.approx({"err": 3.0, "acc": 20.0})
    assert out["std"] == pytest.approx({"err": math.sqrt(7.0), "acc": math.sqrt(300.0)})
    assert list(out["mean"]) == ["err", "acc"]  # metric order kept


def test_aggregate_two_seeds_uses_n_minus_one():
    out = aggregate([{"m": 0.0}, {"m": 2.0}])
    # population std would be 1; the sample std is sqrt(((-1)^2 + 1^2) / 1) = sqrt(2)
    assert out["std"]["m"] == pytest.approx(math.sqrt(2.0))


def test_aggregate_one_seed_has_zero_std():
    out = aggregate([{"err": 4.5, "pck": 80.0}])
    assert out == {"mean": {"err": 4.5, "pck": 80.0}, "std": {"err": 0.0, "pck": 0.0}}


def test_aggregate_identical_seeds_have_zero_std():
    assert aggregate([{"m": 0.3}] * 4)["std"]["m"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("lower", "a", "b", "expected"),
    [(True, 1.0, 2.0, True), (True, 2.0, 1.0, False), (True, 1.0, 1.0, False),
     (False, 2.0, 1.0, True), (False, 1.0, 2.0, False), (False, 1.0, 1.0, False)],
)
def test_better_follows_the_metric_direction(lower, a, b, expected):
    ctx = SimpleNamespace(task=SimpleNamespace(primary_metric=MetricSpec("m", lower)))
    assert better(ctx, a, b) is expected


@pytest.fixture
def fake_training(monkeypatch):
    """train_one / evaluate_estimator replaced: a "model" remembers its training set, seed and
    transform; its score is ``10 * seed + training fill + 100 * test fill`` (fills identify splits)."""
    calls = []

    def train_one(ctx, train, seed, transform=None):
        model = SimpleNamespace(train=train, seed=seed, transform=transform)
        calls.append(model)
        return model

    def evaluate_estimator(task, model, test):
        fill = float(test.images.flatten()[0])
        return {"err": 10.0 * model.seed + float(model.train.images.flatten()[0]) + 100.0 * fill, "n": float(len(test))}

    monkeypatch.setattr(scoring, "train_one", train_one)
    monkeypatch.setattr(scoring, "evaluate_estimator", evaluate_estimator)
    return calls


def test_score_row_one_model_per_seed_scored_on_the_test_split(fake_ctx, fake_training):
    ctx = fake_ctx(seed=10, seeds=3)
    transform = object()
    row = score_row(ctx, ctx.base_synthetic(), transform=transform)
    assert [m.seed for m in fake_training] == [10, 11, 12]
    assert all(m.transform is transform for m in fake_training)
    # test split fill -0.5 -> -50; synthetic fill 0
    assert [s["err"] for s in row["per_seed"]] == pytest.approx([50.0, 60.0, 70.0])
    assert [s["n"] for s in row["per_seed"]] == [5.0, 5.0, 5.0]
    assert row["mean"]["err"] == pytest.approx(60.0)
    assert row["std"]["err"] == pytest.approx(10.0)
    assert "models" not in row


def test_score_row_cycles_per_seed_training_sets_and_keeps_models(fake_ctx, fake_training):
    ctx = fake_ctx(seed=0, seeds=3)
    sets = [ctx.base_synthetic().with_images(ctx.base_synthetic().images + v) for v in (1.0, 2.0)]
    row = score_row(ctx, sets, test=ctx.val, keep_models=True)
    # seed s trains on sets[s % 2]: fills 1, 2, 1; val fill 0.5 -> +50
    assert [m.train for m in fake_training] == [sets[0], sets[1], sets[0]]
    assert [s["err"] for s in row["per_seed"]] == pytest.approx([51.0, 62.0, 71.0])
    assert row["models"] == fake_training


def test_score_row_treats_a_tuple_as_one_set_per_seed(fake_ctx, fake_training):
    ctx = fake_ctx(seeds=2)
    a, b = ctx.base_synthetic(), ctx.base_synthetic(2)
    score_row(ctx, (a, b))
    assert [m.train for m in fake_training] == [a, b]


def test_score_row_with_fewer_seeds_uses_the_first_ones(fake_ctx, fake_training):
    ctx = fake_ctx(seed=10, seeds=3)
    row = score_row(ctx, ctx.base_synthetic(), seeds=2)
    assert [m.seed for m in fake_training] == [10, 11]
    assert [s["err"] for s in row["per_seed"]] == pytest.approx([50.0, 60.0])
    assert row["mean"]["err"] == pytest.approx(55.0)
