"""Applying a trained refiner: to tensors in memory, and to HDF5 files of synthetic images."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from simgan_toolkit.data.hdf5 import H5ImageWriter, count_images_h5, iter_images_h5, read_attrs
from simgan_toolkit.errors import ConfigError, DataError
from simgan_toolkit.io import check_free_space, check_output_file
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


def _check_finite(input_path: str | Path, batch_size: int) -> None:
    """Refuse input images holding NaN or infinite values: a refiner spreads each such pixel over
    its whole receptive field and the output would silently hold NaN images."""
    bad, first, n = 0, None, 0
    for batch in iter_images_h5(input_path, batch_size=batch_size):
        rows = (~torch.isfinite(batch.images.flatten(1))).any(dim=1)
        if first is None and rows.any():
            first = n + int(rows.nonzero()[0])
        bad += int(rows.sum())
        n += len(batch)
    if bad:
        raise DataError(
            f"{str(input_path)!r}: {bad} of {n} images hold NaN or infinite pixel values (the first is image {first}); "
            "nothing was refined"
        )


def _estimated_output_bytes(input_path: str | Path, n: int, image_shape: tuple[int, ...], label_shapes: dict[str, tuple[int, ...]]) -> int:
    """The refined file's size to expect: that of the input (same rows, labels, layout and
    compression), at most the uncompressed float32 size."""
    per_image = math.prod(image_shape) + sum(math.prod(s) for s in label_shapes.values())
    return min(Path(input_path).stat().st_size, 4 * n * per_image)


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
    overwrite: bool = False,
) -> int:
    """Refine every image of a toolkit HDF5 file into a new one, carrying the labels over.

    The output gets ``kind = "refined"`` and provenance attributes (checkpoint, input file).
    It is written atomically. Returns the number of images refined.

    Everything that can be checked is checked before the refiner runs: the batch size, the
    output location (see :func:`simgan_toolkit.io.check_output_file`: an existing file is
    replaced only with ``overwrite``, the input or the checkpoint never), the checkpoint, the
    input's image shape, non-finite input pixels, and the free space for the output.

    Raises:
        ConfigError: ``batch_size`` below 1.
        DataError: any of the checks above fails, or the disk fills up while writing.
    """
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    check_output_file(output_path, overwrite=overwrite, inputs={"input file": input_path, "checkpoint": checkpoint})
    n = count_images_h5(input_path)
    refiner, image_spec = load_refiner(checkpoint, registry, device)
    expected = (image_spec["channels"], image_spec["height"], image_spec["width"])
    attrs = read_attrs(input_path)
    first = next(iter_images_h5(input_path, batch_size=1), None)
    if first is None:
        raise DataError(f"{str(input_path)!r} holds no images to refine")
    if tuple(first.images.shape[1:]) != expected:
        raise DataError(
            f"{str(input_path)!r}: images are {tuple(first.images.shape[1:])} (C, H, W) but the refiner in "
            f"{str(checkpoint)!r} was trained on {expected}"
        )
    _check_finite(input_path, batch_size)
    label_shapes = {k: tuple(v.shape[1:]) for k, v in first.labels.items()}
    check_free_space(output_path, _estimated_output_bytes(input_path, n, expected, label_shapes))
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
