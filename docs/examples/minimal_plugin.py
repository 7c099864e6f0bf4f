"""A complete minimal domain plugin for simgan-toolkit: bright spots on a dark background.

The simulator draws a clean Gaussian spot at a labelled position; the "real" generator draws
the same spot through a blurry, noisy sensor. The estimator regresses the spot position.

Register it with an entry point in your package's pyproject.toml::

    [project.entry-points.simgan_toolkit]
    spots = "minimal_plugin"

then run ``python -m simgan_toolkit.run --task spots --profile smoke``.
"""

from __future__ import annotations

from typing import Any

import kornia
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from simgan_toolkit.estimation import Estimator
from simgan_toolkit.plugin import Register, hookimpl
from simgan_toolkit.task import ImageSpec, LabelledImages, MetricSpec, Task

SIZE = 16


def draw_spots(centres: Tensor, sigma: float = 1.5) -> Tensor:
    """(N, 2) (x, y) pixel centres -> (N, 1, SIZE, SIZE) images in [-1, 1]."""
    grid = torch.arange(SIZE, device=centres.device, dtype=torch.float32)
    dx = grid.view(1, 1, SIZE) - centres[:, 0].view(-1, 1, 1)
    dy = grid.view(1, SIZE, 1) - centres[:, 1].view(-1, 1, 1)
    return (2 * torch.exp(-(dx**2 + dy**2) / (2 * sigma**2)) - 1).unsqueeze(1)


class SpotsTask(Task):
    """Where is the spot? Synthetic spots are clean; real ones blurred and noisy."""

    name = "spots"

    @property
    def image_spec(self) -> ImageSpec:
        return ImageSpec(channels=1, height=SIZE, width=SIZE)

    def _centres(self, n: int, g: torch.Generator, device: torch.device) -> Tensor:
        return 3 + torch.rand(n, 2, generator=g, device=device) * (SIZE - 6)

    def synthetic(self, n: int, seed: int, device: torch.device) -> LabelledImages:
        g = torch.Generator(device=device).manual_seed(seed)
        centres = self._centres(n, g, device)
        return LabelledImages(draw_spots(centres), {"centre": centres})

    def target_labelled(self, n: int, seed: int, device: torch.device) -> LabelledImages:
        g = torch.Generator(device=device).manual_seed(seed)
        centres = self._centres(n, g, device)
        blurred = kornia.filters.gaussian_blur2d(draw_spots(centres), (5, 5), (1.0, 1.0))
        noisy = blurred + 0.15 * torch.randn(blurred.shape, generator=g, device=device)
        return LabelledImages(noisy.clamp(-1, 1), {"centre": centres})

    def target(self, n: int, seed: int, device: torch.device) -> Tensor:
        return self.target_labelled(n, seed, device).images  # the refiner never sees labels

    def profiles(self) -> dict[str, dict[str, Any]]:
        tiny = {
            "refiner": {"width": 8, "blocks": 1, "output": "residual"},
            "discriminator": {"layers": ["conv3s2-16", "conv3-16", "conv1-2"]},
            "train": {"batch_size": 16, "refiner_pretrain_steps": 5, "discriminator_pretrain_steps": 5, "steps": 10,
                      "history_size": 64, "log_every": 5, "sample_every": 5, "checkpoint_every": 5},
            "data": {"n_synthetic": 256, "n_target": 256, "n_test": 64, "n_target_train": 256},
            "estimator": {"name": "spot_cnn", "steps": 20, "batch_size": 32},
        }
        return {"smoke": tiny, "default": tiny}

    @property
    def estimator_output_dim(self) -> int:
        return 2

    def estimator_loss(self, prediction: Tensor, labels: dict[str, Tensor]) -> Tensor:
        return F.mse_loss(prediction, labels["centre"])

    def estimator_metrics(self, prediction: Tensor, labels: dict[str, Tensor]) -> dict[str, float]:
        return {"error_px": float(self.primary_metric_per_image(prediction, labels).mean())}

    @property
    def primary_metric(self) -> MetricSpec:
        return MetricSpec("error_px", lower_is_better=True, unit="px")

    def primary_metric_per_image(self, prediction: Tensor, labels: dict[str, Tensor]) -> Tensor:
        # Optional: lets the run's verdict measure the test set's noise, not only the seeds'.
        return (prediction - labels["centre"]).norm(dim=1)

    def label_preservation(self, synthetic: LabelledImages, refined: Tensor) -> dict[str, float]:
        def brightest(x: Tensor) -> Tensor:
            flat = x.flatten(1).argmax(dim=1)
            return torch.stack([flat % SIZE, flat // SIZE], dim=1).float()

        return {"peak_shift_px": float((brightest(refined) - brightest(synthetic.images)).norm(dim=1).mean())}


class SpotCNN(Estimator):
    """(N, 1, 16, 16) -> (N, output_dim). ``features`` feeds the ``learned`` feature transform."""

    def __init__(self, image_spec: ImageSpec, output_dim: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(image_spec.channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(16 * (image_spec.height // 2) * (image_spec.width // 2), output_dim))

    def features(self, x: Tensor) -> Tensor:
        return self.trunk(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x))


@hookimpl
def simgan_register_tasks(register: Register) -> None:
    register.task("spots", SpotsTask, description="minimal example: Gaussian spots, noisy blurry 'real' sensor")


@hookimpl
def simgan_register_estimators(register: Register) -> None:
    register.estimator("spot_cnn", SpotCNN, description="one conv layer and a linear head (example)")
