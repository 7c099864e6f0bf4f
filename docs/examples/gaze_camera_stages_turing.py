"""Does the gaze refiner miss the target camera's pixel-level stages (sensor noise, JPEG, 8 bits)?

A diagnostic, not a method: it applies the *target generator's own* camera stages
(:func:`simgan_gaze.target.add_sensor_noise`, :func:`~simgan_gaze.target.jpeg_compress`,
:func:`~simgan_gaze.target.quantise_8bit`) to a run's refined eyes and to synthetic eyes, and
runs the benchmark suite's visual Turing test (:func:`benchmarks.realism.visual_turing_test`,
whole images) on each against fresh target eyes. If the refined score barely moves, what tells
refined from target is not those stages but the image's content. Numbers: docs/gaze.md.

    python -m simgan_toolkit.run --task gaze --out runs/gaze
    python docs/examples/gaze_camera_stages_turing.py runs/gaze            # 600 images, 100 steps
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import Tensor

# The benchmark suite is a folder of the repository (run as `python -m benchmarks`), not an
# installed package: make it importable when this file is run by path.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.realism import visual_turing_test  # noqa: E402
from simgan_gaze.target import JPEG_QUALITY_RANGE, add_sensor_noise, jpeg_compress, quantise_8bit
from simgan_toolkit.data.hdf5 import read_images_h5
from simgan_toolkit.plugin import get_registry

#: The simulator's display gamma (linear radiance <-> display values), as the target assumes.
GAMMA = 2.2


def camera_stages(images: Tensor, generator: torch.Generator, noise: bool) -> Tensor:
    """(N, C, H, W) eyes in [-1, 1] through the target's sensor noise (optional; applied in linear
    radiance), JPEG at the target's quality range and 8-bit quantisation; same shape and range."""
    display = ((images + 1) / 2).clamp(0, 1)
    if noise:
        display = add_sensor_noise(display**GAMMA, generator).clamp(0, 1) ** (1 / GAMMA)
    low, high = JPEG_QUALITY_RANGE
    quality = low + (high - low) * torch.rand(len(images), generator=generator)
    return quantise_8bit(jpeg_compress(display, quality)) * 2 - 1


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a gaze run folder (its refined.h5)")
    parser.add_argument("--task", default="gaze")
    parser.add_argument("--n", type=int, default=600, help="images per side")
    parser.add_argument("--steps", type=int, default=100, help="classifier steps (the quick suite's)")
    args = parser.parse_args(argv)
    task = get_registry().create("task", args.task)
    cpu = torch.device("cpu")
    refined = read_images_h5(args.run / "refined.h5").images[: args.n]
    synthetic = task.synthetic(len(refined), 101, cpu).images
    target = task.target(len(refined), 777, cpu)
    g = torch.Generator().manual_seed(5)
    rows = {
        "refined": refined,
        "refined + JPEG/8-bit": camera_stages(refined, g, noise=False),
        "refined + sensor noise + JPEG/8-bit": camera_stages(refined, g, noise=True),
        "synthetic + sensor noise + JPEG/8-bit": camera_stages(synthetic, g, noise=True),
    }
    scores = {}
    for name, images in rows.items():
        result = visual_turing_test(target, images, task.image_spec, steps=args.steps)
        scores[name] = result.accuracy
        print(f"{name}: Turing test {result.accuracy:.1f} % (classifiers {', '.join(f'{a:.1f}' for a in result.accuracies)})",
              flush=True)
    return scores


if __name__ == "__main__":
    main()
