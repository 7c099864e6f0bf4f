"""Estimator training and scoring on a toy regression task."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from simgan_toolkit.config import EstimatorConfig
from simgan_toolkit.errors import TrainingDivergedError
from simgan_toolkit.estimation import Estimator, evaluate_estimator, predict, save_estimator, train_estimator
from simgan_toolkit.features import load_learned
from simgan_toolkit.task import ImageSpec, LabelledImages, MetricSpec, Task


class MeanTask(Task):
    """Predict the mean brightness of an image: learnable by a linear model in a few steps."""

    name = "mean"

    @property
    def image_spec(self):
        return ImageSpec(1, 4, 4)

    def synthetic(self, n, seed, device):
        g = torch.Generator().manual_seed(seed)
        x = torch.rand(n, 1, 4, 4, generator=g) * 2 - 1
        return LabelledImages(x, {"mean": x.mean(dim=(1, 2, 3)).unsqueeze(1)})

    target = target_labelled = synthetic  # type: ignore[assignment]

    estimator_output_dim = 1

    def estimator_loss(self, prediction, labels):
        return F.mse_loss(prediction, labels["mean"])

    def estimator_metrics(self, prediction, labels):
        return {"mae": float((prediction - labels["mean"]).abs().mean())}

    primary_metric = MetricSpec("mae", lower_is_better=True)

    def label_preservation(self, synthetic, refined):
        return {}


class Linear(Estimator):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 1)

    def features(self, x):
        return x

    def forward(self, x):
        return self.fc(x.flatten(1))


@pytest.fixture
def registry(spot):
    """The tests' own registry (the spot task, its estimator and the built-ins; no entry-point
    plugins): core needs no domain plugin."""
    return spot.registry()


def test_training_reduces_the_error():
    task = MeanTask()
    data, test = task.synthetic(512, 0, "cpu"), task.synthetic(128, 1, "cpu")
    torch.manual_seed(0)
    model = Linear()
    before = evaluate_estimator(task, model, test)["mae"]
    fit = train_estimator(task, model, data, EstimatorConfig(steps=200, batch_size=32, lr=1e-2), seed=0, progress=False)
    after = evaluate_estimator(task, model, test)["mae"]
    assert after < 0.25 * before and fit["final_loss"] < 0.01


def test_training_is_seeded():
    task = MeanTask()
    data = task.synthetic(64, 0, "cpu")
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        model = Linear()
        train_estimator(task, model, data, EstimatorConfig(steps=10, batch_size=8), seed=3, progress=False)
        models.append(model)
    assert torch.equal(models[0].fc.weight, models[1].fc.weight)


def test_image_transform_sees_every_training_batch():
    """A label-free transform that shifts every image by +0.5 teaches a model to subtract
    0.5, so on clean images it reads low (towards -0.5); without the transform it is unbiased."""
    task = MeanTask()
    data, test = task.synthetic(512, 0, "cpu"), task.synthetic(128, 1, "cpu")
    seen = []

    def shift(images, generator):
        seen.append(images.shape[0])
        return images + 0.5

    cfg = EstimatorConfig(steps=300, batch_size=32, lr=1e-2)
    biases = []
    for transform in (shift, None):
        torch.manual_seed(0)
        model = Linear()
        train_estimator(task, model, data, cfg, seed=0, progress=False, image_transform=transform)
        biases.append(float((predict(model, test.images) - test.labels["mean"]).mean()))
    assert seen == [32] * 300
    assert biases[0] < -0.25 and abs(biases[1]) < 0.05


def test_divergence_is_reported():
    task = MeanTask()
    data = task.synthetic(64, 0, "cpu")
    data.labels["mean"][:] = float("nan")
    with pytest.raises(TrainingDivergedError, match="estimator"):
        train_estimator(task, Linear(), data, EstimatorConfig(steps=5, batch_size=8), seed=0, progress=False)


def test_predict_is_batch_size_independent():
    model = Linear()
    x = torch.randn(50, 1, 4, 4)
    assert torch.allclose(predict(model, x, batch_size=7), predict(model, x, batch_size=50), atol=1e-6)


def test_saved_estimator_loads_as_learned_feature_transform(tmp_path, registry):
    from simgan_toolkit.task import ImageSpec as Spec

    options = {"image_spec": Spec(1, 12, 16), "output_dim": 2}
    model = registry.create("estimator", "tiny_linear", **options)
    save_estimator(model, "tiny_linear", options, tmp_path / "est.pt")
    psi = load_learned(tmp_path / "est.pt", registry)
    x = torch.randn(2, 1, 12, 16, requires_grad=True)
    assert torch.equal(psi(x), model.eval().features(x))
    assert torch.equal(psi.network(x), model(x))  # the weights came back, not only the architecture
    psi(x).sum().backward()
    assert x.grad is not None


class ResizingLinear(Linear):
    """A model that resizes its input to 2x2 (by 2x2 average pooling) before a linear layer."""

    input_size = 2

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 1)
        self.calls = []

    def resize_input(self, x):
        self.calls.append(tuple(x.shape))
        return x if x.shape[-1] == 2 else F.avg_pool2d(x, 2)

    def forward(self, x):
        return self.fc(self.resize_input(x).flatten(1))


def test_training_set_is_resized_once_through_resize_input():
    task = MeanTask()
    data = task.synthetic(40, 0, "cpu")
    seen = []
    model = ResizingLinear()
    cfg = EstimatorConfig(steps=5, batch_size=8, lr=1e-2)
    train_estimator(task, model, data, cfg, seed=0, progress=False,
                    image_transform=lambda images, g: seen.append(tuple(images.shape)) or images)
    # One call on the whole (4x4) training set, then only already-resized 2x2 batches.
    assert model.calls[0] == (40, 1, 4, 4)
    assert all(shape[-2:] == (2, 2) for shape in model.calls[1:])
    assert seen == [(8, 1, 2, 2)] * 5


def test_resized_for_matches_what_the_model_does_at_evaluation():
    from simgan_toolkit.estimation.training import resized_for

    data = MeanTask().synthetic(6, 0, "cpu")
    model = ResizingLinear()
    torch.testing.assert_close(resized_for(model, data).images, F.avg_pool2d(data.images, 2))
    assert torch.equal(resized_for(model, data).labels["mean"], data.labels["mean"])
    # The base class's resize_input is the identity: the set is not copied through it.
    assert resized_for(Linear(), data) is data
    assert resized_for(nn.Conv2d(1, 1, 1), data) is data  # no resize_input at all
