"""Applying a trained refiner: to tensors in memory, and to HDF5 files of synthetic images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from simgan_toolkit.data.hdf5 import H5ImageWriter, count_images_h5, iter_images_h5, read_attrs
from simgan_toolkit.errors import DataError
from simgan_toolkit.networks import Refiner
from simgan_toolkit.plugin import Registry
from simgan_toolkit.training.checkpoint import load_checkpoint


@torch.no_grad()
def refine_images(refiner: Refiner, images: Tensor, batch_size: int = 512, seed: int = 0) -> Tensor:
    """R(x) for (N, C, H, W) ``images`` in eval mode, batch by batch, on the refiner's device.

    Refiners with noise inputs draw it from a generator seeded by ``seed``, so the result is
    reproducible.
    """
    refiner.eval()
    device = next(refiner.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].to(device)
        out.append(refiner(x, refiner.sample_noise(x, generator)).to(images.device))
    return torch.cat(out) if out else images.clone()


def load_refiner(checkpoint: str | Path, registry: Registry, device: torch.device | str = "cpu") -> tuple[Refiner, dict[str, Any]]:
    """Rebuild the refiner stored in a trainer checkpoint; returns it and the checkpoint's image spec."""
    state = load_checkpoint(checkpoint, map_location=device)
    spec = state.get("refiner_spec") or {}
    if "name" not in spec:
        raise DataError(f"checkpoint {str(checkpoint)!r} does not record which refiner it holds (no refiner_spec)")
    refiner = registry.create("refiner", spec["name"], **spec["options"]).to(device)
    # With train.refiner_ema the weight average is the refiner to apply; without it (or in
    # checkpoints older than it) the live refiner is.
    refiner.load_state_dict(state.get("refiner_ema") or state["refiner"])
    return refiner, state["image_spec"]


def refine_h5(
    checkpoint: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    registry: Registry,
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 512,
    seed: int = 0,
    progress: bool = True,
) -> int:
    """Refine every image of a toolkit HDF5 file into a new one, carrying the labels over.

    The output gets ``kind = "refined"`` and provenance attributes (checkpoint, input file).
    It is written atomically. Returns the number of images refined.
    """
    refiner, image_spec = load_refiner(checkpoint, registry, device)
    expected = (image_spec["channels"], image_spec["height"], image_spec["width"])
    n = count_images_h5(input_path)
    attrs = read_attrs(input_path)
    first = next(iter_images_h5(input_path, batch_size=1), None)
    if first is None:
        raise DataError(f"{str(input_path)!r} holds no images to refine")
    if tuple(first.images.shape[1:]) != expected:
        raise DataError(
            f"{str(input_path)!r}: images are {tuple(first.images.shape[1:])} (C, H, W) but the refiner in "
            f"{str(checkpoint)!r} was trained on {expected}"
        )
    label_shapes = {k: tuple(v.shape[1:]) for k, v in first.labels.items()}
    provenance = {
        **{k: v for k, v in attrs.items() if k not in ("format", "created", "toolkit_version", "count")},
        "kind": "refined",
        "refiner_checkpoint": str(Path(checkpoint).resolve()),
        "source_file": str(Path(input_path).resolve()),
        "refine_seed": seed,
    }
    generator_seed = seed
    with H5ImageWriter(output_path, expected, label_shapes, provenance) as writer:  # type: ignore[arg-type]
        with tqdm(total=n, desc="refine", unit="img", disable=not progress, dynamic_ncols=True) as bar:
            for i, batch in enumerate(iter_images_h5(input_path, batch_size=batch_size)):
                refined = refine_images(refiner, batch.images, batch_size, seed=generator_seed + i)
                writer.append(refined, batch.labels)
                bar.update(len(batch))
    return n
