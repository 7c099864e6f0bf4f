"""Contract tests, parametrised over every registered component of each kind.

A third-party plugin installed next to the built-ins is checked by the same tests: a refiner
keeps the shape, a discriminator returns (N, 2, h, w), a feature transform keeps the batch
dimension, an estimator is an :class:`Estimator` with features and the declared output, a task
returns images in its image spec with its declared labels, a dataset loader declares its shapes.
Sizes are tiny (12x16 images, narrow networks) to stay fast.
"""

from __future__ import annotations

import inspect

import pytest
import torch

from simgan_toolkit.config import DiscriminatorConfig, RefinerConfig
from simgan_toolkit.data.loader import DatasetLoader
from simgan_toolkit.estimation import Estimator, save_estimator
from simgan_toolkit.features import FeatureTransform
from simgan_toolkit.losses import SimGANLoss
from simgan_toolkit.networks import Discriminator, Refiner
from simgan_toolkit.plugin import PluginManager
from simgan_toolkit.plugin.lazy import resolve
from simgan_toolkit.task import ImageSpec, LabelledImages, Task

H, W = 12, 16
CPU = torch.device("cpu")
TINY_LAYERS = ["conv3s2-8", "conv1-2"]
#: Small options per built-in estimator (a plugin's estimator is built with its defaults).
TINY_ESTIMATORS: dict[str, tuple[ImageSpec, dict]] = {
    "gaze_cnn": (ImageSpec(1, 35, 55), {"width_mult": 0.125, "hidden": 8}),
    "hourglass": (ImageSpec(1, H, W), {"stacks": 2, "width": 8, "depth": 1, "input_size": 16, "heatmap_size": 4}),
    "timm": (ImageSpec(1, 32, 32), {"backbone": "resnet18"}),
    "timm_heatmap": (ImageSpec(1, H, W), {"backbone": "resnet18", "input_size": 32, "heatmap_size": 4}),
}


def _names(kind: str) -> list[str]:
    # Collected at import: the same registry the `registry` fixture builds.
    return PluginManager().registry.names(kind)


def _images(n: int, channels: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, channels, H, W, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", _names("refiner"))
def test_refiner_contract(registry, name, channels):
    options = RefinerConfig(width=4, blocks=1, noise_channels=1).factory_options() if name == "resnet" else {}
    refiner = registry.create("refiner", name, in_channels=channels, **options)
    assert isinstance(refiner, Refiner)
    x = _images(2, channels)
    assert refiner(x, refiner.sample_noise(x, torch.Generator().manual_seed(0))).shape == x.shape


@pytest.mark.parametrize("name", _names("discriminator"))
def test_discriminator_contract(registry, name):
    options = DiscriminatorConfig(layers=TINY_LAYERS).factory_options()
    discriminator = registry.create("discriminator", name, in_channels=3, image_height=H, image_width=W, **options)
    assert isinstance(discriminator, Discriminator)
    logits = discriminator(_images(2, 3))
    assert logits.ndim == 4 and logits.shape[:2] == (2, 2)


@pytest.fixture
def estimator_checkpoint(tmp_path, registry):
    """A tiny gaze_cnn checkpoint for the ``learned`` transform, as the pipeline saves one."""
    spec, options = TINY_ESTIMATORS["gaze_cnn"]
    options = {"image_spec": spec, "output_dim": 3, **options}
    path = tmp_path / "estimator.pt"
    save_estimator(registry.create("estimator", "gaze_cnn", **options), "gaze_cnn", options, path)
    return str(path)


@pytest.mark.parametrize("name", _names("feature_transform"))
def test_feature_transform_contract(registry, name, estimator_checkpoint):
    checkpoint = estimator_checkpoint if name == "learned" else None
    psi = registry.create("feature_transform", name, checkpoint=checkpoint, registry=registry)
    assert isinstance(psi, FeatureTransform)
    x = torch.rand(2, 1, 35, 55, requires_grad=True)  # the checkpoint's estimator's size
    out = psi(x)
    assert isinstance(out, torch.Tensor) and out.ndim >= 2 and out.shape[0] == 2
    assert not any(p.requires_grad for p in psi.parameters())  # psi is fixed during SimGAN training


@pytest.mark.parametrize("name", _names("loss"))
def test_loss_contract(registry, name):
    entry = registry.get("loss", name)
    assert isinstance(entry.available(CPU), bool)
    if not entry.available(CPU):
        pytest.skip(f"loss {name!r} does not run on the CPU")
    loss = registry.create("loss", name)
    assert isinstance(loss, SimGANLoss)
    psi = _images(2, 1)
    assert loss.regularization(psi, psi).item() == 0.0


@pytest.mark.parametrize("name", _names("estimator"))
def test_estimator_contract(registry, name):
    spec, options = TINY_ESTIMATORS.get(name, (ImageSpec(1, 64, 64), {}))
    torch.manual_seed(0)
    model = registry.create("estimator", name, image_spec=spec, output_dim=5, **options)
    assert isinstance(model, Estimator)
    x = torch.rand(2, spec.channels, spec.height, spec.width)
    features = model.eval().features(x)
    assert features.ndim >= 2 and features.shape[0] == 2
    resized = model.resize_input(x)
    assert resized.ndim == 4 and resized.shape[:2] == (2, spec.channels)
    prediction = model(x)
    assert prediction.shape[:2] == (2, 5)  # eval mode: output_dim along dimension 1
    # Resizing first changes nothing: the training loop resizes the training set once.
    assert torch.allclose(model(resized), prediction, atol=1e-5)


def test_estimator_base_needs_forward_and_features():
    assert Estimator.__abstractmethods__ == {"forward", "features"}
    assert torch.equal(Estimator.resize_input(None, torch.ones(1, 1, 2, 2)), torch.ones(1, 1, 2, 2))


@pytest.mark.parametrize("name", _names("task"))
def test_task_contract(registry, name):
    task = registry.create("task", name)
    assert isinstance(task, Task)
    spec = task.image_spec
    labels = task.estimator_labels
    synthetic = task.synthetic(2, 0, CPU)
    target_labelled = task.target_labelled(2, 0, CPU)
    for what, data in (("synthetic", synthetic), ("target_labelled", target_labelled)):
        assert isinstance(data, LabelledImages)
        spec.check(data.images, f"{name}.{what}")
        assert data.images.shape == (2, spec.channels, spec.height, spec.width)
        if labels is not None:
            assert {k: tuple(v.shape[1:]) for k, v in data.labels.items() if k in labels} == labels, what
    target = task.target(2, 0, CPU)
    spec.check(target, f"{name}.target")
    assert target.shape == (2, spec.channels, spec.height, spec.width)
    assert isinstance(task.estimator_output_dim, int) and task.estimator_output_dim > 0


@pytest.mark.parametrize("name", _names("dataset"))
def test_dataset_contract(registry, name):
    loader_class = resolve(registry.get("dataset", name).factory)
    assert inspect.isclass(loader_class) and issubclass(loader_class, DatasetLoader)
    assert not inspect.isabstract(loader_class), f"{name}: {sorted(loader_class.__abstractmethods__)} not implemented"
    assert isinstance(loader_class.image_shape, property) and isinstance(loader_class.label_shapes, property)
    try:
        loader = loader_class()
    except TypeError:  # needs options: the class-level checks above are all that can run
        return
    c, h, w = loader.image_shape
    assert min(c, h, w) > 0
    assert all(isinstance(shape, tuple) for shape in loader.label_shapes.values())
