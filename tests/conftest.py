"""Shared small fixtures: a plugin registry, tiny configs, tiny image sets and a tiny trainer.

Everything here is sized for milliseconds: 1-channel 12x16 images, a 4-map refiner with one
residual block and a two-layer discriminator.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from simgan_toolkit.config import RunConfig, deep_merge
from simgan_toolkit.features import Identity
from simgan_toolkit.losses import SimGANLoss
from simgan_toolkit.networks import LocalDiscriminator, ResNetRefiner
from simgan_toolkit.plugin import PluginManager, Registry
from simgan_toolkit.task import ImageSpec
from simgan_toolkit.training import SimGANNetworks, SimGANTrainer, refiner_spec

TINY_H, TINY_W = 12, 16
TINY_LAYERS = ["conv3s2-8", "conv1-2"]


@pytest.fixture(scope="session")
def registry() -> Registry:
    """The full registry (built-ins and entry-point plugins), built once."""
    return PluginManager().registry


@pytest.fixture
def tiny_spec() -> ImageSpec:
    return ImageSpec(channels=1, height=TINY_H, width=TINY_W)


@pytest.fixture
def tiny_images():
    """``tiny_images(n, seed, scale=1.0, shift=0.0)`` -> (n, 1, 12, 16) uniform in [-1, 1]*scale+shift."""

    def make(n: int, seed: int, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return (torch.rand(n, 1, TINY_H, TINY_W, generator=g) * 2 - 1) * scale + shift

    return make


@pytest.fixture
def tiny_config():
    """``tiny_config(**sections)`` -> a RunConfig with a tiny schedule; ``sections`` deep-merge over it."""

    def make(**override: Any) -> RunConfig:
        base: dict[str, Any] = {
            "task": "tiny",
            "seed": 0,
            "device": "cpu",
            "refiner": {"width": 4, "blocks": 1, "output": "tanh", "noise_channels": 1},
            "discriminator": {"layers": TINY_LAYERS},
            "train": {
                "batch_size": 4,
                "refiner_pretrain_steps": 2,
                "discriminator_pretrain_steps": 2,
                "steps": 4,
                "history_size": 6,
                "log_every": 1,
                "sample_every": 2,
                "checkpoint_every": 2,
                "refiner_optimizer": {"name": "adam", "lr": 1e-2},
                "discriminator_optimizer": {"name": "adam", "lr": 1e-2},
            },
            "data": {"n_synthetic": 16, "n_target": 16, "n_test": 8, "n_target_train": 0},
            "estimator": {"name": "gaze_cnn"},
        }
        return RunConfig.model_validate(deep_merge(base, override))

    return make


@pytest.fixture
def make_trainer(tiny_spec, tiny_images):
    """``make_trainer(config, out_dir=None, init_seed=0, synthetic=None, real=None)`` -> SimGANTrainer.

    ``init_seed`` seeds the networks' initial weights (a resumed trainer should start from
    *different* weights, so that only the checkpoint can make it match).
    """

    def make(
        config: RunConfig,
        out_dir: Path | None = None,
        init_seed: int = 0,
        synthetic: torch.Tensor | None = None,
        real: torch.Tensor | None = None,
    ) -> SimGANTrainer:
        torch.manual_seed(init_seed)
        refiner = ResNetRefiner(1, **config.refiner.factory_options())
        discriminator = LocalDiscriminator(1, **config.discriminator.factory_options())
        synthetic = tiny_images(16, seed=1) if synthetic is None else synthetic
        real = tiny_images(16, seed=2, scale=0.5, shift=0.2) if real is None else real
        networks = SimGANNetworks(refiner, discriminator, Identity(), SimGANLoss(), refiner_spec(config, tiny_spec))
        return SimGANTrainer(config, tiny_spec, networks, synthetic, real, torch.device("cpu"), out_dir, progress=False)

    return make


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """The whole suite runs with one intra-op thread.

    Test tensors are small: one thread is about as fast on an idle machine and far faster when
    other processes share the 2 cores (spinning OpenMP workers then stall each other: the tiny
    benchmark suite takes ~70 s with two threads, ~13 s with one). Session scope, so that
    module-scoped fixtures (the end-to-end benchmark runs) are covered too.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture
def cli(capsys, monkeypatch):
    """``cli(*argv)`` -> (exit code, stdout, stderr) of ``simgan`` (``cli.main``) run in-process."""
    from simgan_toolkit.cli import main

    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() replaces it

    def call(*argv: object) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call
