"""Where do a run's refined images still differ from the target, and could its discriminator see it?

A diagnostic for any task. Two parts, both against fresh target images (never seen by the run):

1. **Turing views.** The benchmark suite's visual Turing test
   (:func:`benchmarks.realism.visual_turing_test`: small group-norm classifiers, median of 3)
   on the whole images and on views that keep one kind of difference: blurred (shape, shading,
   illumination), high-pass (noise, grain, texture), each image standardised (no brightness or
   contrast). A view that stays easy to tell apart says where the refiner falls short.
2. **Discriminator probe.** The run's own discriminator architecture (``config.json``), trained
   *alone* on the fixed refined set against target images with the trainer's loss, with and
   without group norm. Patch accuracy is what the trainer logs as ``d_acc``; image accuracy
   averages each image's patch logits. If D alone needs thousands of steps to separate what a
   small classifier separates in a hundred, it cannot lead the refiner in a short run (this is
   how the gaze discriminator was found to sit at chance; docs/gaze.md).

    python -m simgan_toolkit.run --task gaze --out runs/gaze
    python docs/examples/refined_realism_probe.py runs/gaze           # ~2 min on a 2-core CPU
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import kornia
import torch
from torch import Tensor

# The benchmark suite is a folder of the repository (run as `python -m benchmarks`), not an
# installed package: make it importable when this file is run by path.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.realism import visual_turing_test  # noqa: E402
from simgan_toolkit.config import RunConfig
from simgan_toolkit.data.hdf5 import read_images_h5
from simgan_toolkit.plugin import Registry, get_registry
from simgan_toolkit.training.build import select_loss


def blurred(images: Tensor) -> Tensor:
    """(N, C, H, W) -> same: Gaussian blur, sigma 1.5 px (removes noise and fine texture)."""
    return kornia.filters.gaussian_blur2d(images, (7, 7), (1.5, 1.5), border_type="replicate")


def high_pass(images: Tensor) -> Tensor:
    """(N, C, H, W) -> same: the image minus its blur, x4 (only noise, grain, edges and texture)."""
    return (images - blurred(images)) * 4


def standardised(images: Tensor) -> Tensor:
    """(N, C, H, W) -> same: each image at zero mean and 0.2 standard deviation (no brightness or contrast)."""
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return (images - mean) / images.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6) * 0.2


VIEWS: dict[str, Callable[[Tensor], Tensor]] = {
    "whole": lambda x: x, "blurred": blurred, "high-pass": high_pass, "standardised": standardised,
}


def probe_discriminator(config: RunConfig, registry: Registry, real: Tensor, refined: Tensor, *, norm: str,
                        steps: int, batch_size: int = 32, seed: int = 0) -> dict[str, float]:
    """Train ``config``'s discriminator (with ``norm``) alone for ``steps`` Adam steps (the run's D
    learning rate and betas) on the first halves of ``real`` and ``refined`` (N, C, H, W); returns held-out
    ``patch_acc`` and ``image_acc`` (%) on the second halves."""
    n = min(len(real), len(refined)) // 2
    if n < 2:
        raise ValueError(f"the discriminator probe needs at least 4 images per set, got {len(real)} and {len(refined)}")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    options = {**config.discriminator.factory_options(), "norm": norm}
    d = registry.create("discriminator", config.discriminator.name, in_channels=real.shape[1],
                        image_height=real.shape[2], image_width=real.shape[3], **options)
    loss = select_loss(registry, "auto", torch.device("cpu"))[1]
    d_opt = config.train.discriminator_optimizer
    opt = torch.optim.Adam(d.parameters(), lr=d_opt.lr, betas=(d_opt.beta1, d_opt.beta2))
    half = min(batch_size, n)
    d.train()
    for _ in range(steps):
        i, j = torch.randint(n, (half,), generator=g), torch.randint(n, (half,), generator=g)
        out = loss.discriminator_loss(d(refined[:n][j]), d(real[:n][i]))
        opt.zero_grad(set_to_none=True)
        out.backward()
        opt.step()
    d.eval()
    with torch.no_grad():
        # Class 1 = refined, class 0 = real (the Discriminator contract).
        a, b = d(real[n : 2 * n]), d(refined[n : 2 * n])
    patch = ((a.argmax(1) == 0).float().mean() + (b.argmax(1) == 1).float().mean()) / 2
    score_a, score_b = (a[:, 1] - a[:, 0]).mean(dim=(1, 2)), (b[:, 1] - b[:, 0]).mean(dim=(1, 2))
    image = ((score_a < 0).float().mean() + (score_b > 0).float().mean()) / 2
    return {"patch_acc": float(patch) * 100, "image_acc": float(image) * 100}


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder (its config.json and refined.h5)")
    parser.add_argument("--n", type=int, default=1000, help="images per side")
    parser.add_argument("--steps", type=int, default=300, help="Turing classifier steps")
    parser.add_argument("--d-steps", type=int, default=300, help="discriminator probe steps")
    args = parser.parse_args(argv)
    config = RunConfig.model_validate(json.loads((args.run / "config.json").read_text(encoding="utf-8")))
    registry = get_registry()
    task = registry.create("task", config.task)
    refined = read_images_h5(args.run / "refined.h5").images[: args.n].float()
    target = task.target(len(refined), 777, torch.device("cpu")).float()
    results: dict[str, dict[str, float]] = {}
    for name, view in VIEWS.items():
        turing = visual_turing_test(view(target), view(refined), task.image_spec, steps=args.steps)
        results[f"Turing, {name}"] = {"accuracy": turing.accuracy}
        print(f"Turing test, {name}: {turing.accuracy:.1f} % (classifiers {', '.join(f'{a:.1f}' for a in turing.accuracies)})",
              flush=True)
    for norm in ("none", "group"):
        probe = probe_discriminator(config, registry, target, refined, norm=norm, steps=args.d_steps)
        results[f"D probe, norm {norm}"] = probe
        print(f"discriminator alone, norm {norm}, {args.d_steps} steps: patch accuracy {probe['patch_acc']:.1f} %, "
              f"image accuracy {probe['image_acc']:.1f} %", flush=True)
    return results


if __name__ == "__main__":
    main()
