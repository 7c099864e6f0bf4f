"""Run data from disk: one side of a run (``data.synthetic``, ``data.target``, ...) read from a dataset.

A run normally takes every side from its task's generators; a :class:`DataSource` in the
config replaces one side with a dataset on disk. Everything checkable is checked before the
first image is read: the format, the image shape and value range against the task's
:class:`~simgan_toolkit.task.ImageSpec`, and the labels the task's estimator reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from simgan_toolkit.config import DataSource
from simgan_toolkit.data.formats import ToolkitH5Loader, resolve_loader
from simgan_toolkit.data.reading import sample_dataset
from simgan_toolkit.errors import DataError, SimganError
from simgan_toolkit.plugin.registry import Registry
from simgan_toolkit.task import LabelledImages, Task

#: Sides whose labels the run uses (``target`` is unlabelled: its labels are dropped).
LABELLED_SIDES = ("synthetic", "test", "target_train")


@contextmanager
def _naming(where: str) -> Iterator[None]:
    """A toolkit error raised inside becomes one of the same type whose message starts with ``where``."""
    try:
        yield
    except SimganError as exc:
        raise type(exc)(f"{where}: {exc}") from None


def load_side(
    registry: Registry,
    task: Task,
    side: str,
    source: DataSource,
    n: int,
    seed: int,
    *,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> LabelledImages:
    """Up to ``n`` images (and labels) for one side of a run, from ``source``.

    Which images: a seeded random sample of rows (:func:`~simgan_toolkit.data.reading.sample_dataset`).
    The dataset's units are read in an order shuffled with ``seed`` until well over ``n`` rows
    are in (at least ``n`` plus two of the largest unit, and at least 16 units) or all are
    read, then ``n`` of those rows are drawn at random. So a dataset stored in order (person
    by person, or units of many alike images such as an MPIIGaze person-day) still gives a
    sample mixing many units, without reading all of a large dataset; memory stays at ``n``
    rows plus one unit. Fewer than ``n`` available: all of them, and the log says so.

    Returns:
        (N, C, H, W) float32 images on the CPU, N = min(n, available); for the labelled sides
        with their labels, for ``target`` without.

    Raises:
        DataError / ConfigError / PluginError: naming ``data.<side>.path``: unknown format, bad
            options, no units found, image shape or value range not the task's, a label the task
            needs missing, a bad file (without ``skip_bad``).
    """
    where = f"data.{side}.path {source.path!r}"
    root = Path(source.path)
    with _naming(where):
        loader = resolve_loader(registry, source.format, root, source.options)
    spec = task.image_spec
    want = (spec.channels, spec.height, spec.width)
    if tuple(loader.image_shape) != want:
        raise DataError(
            f"{where}: format {loader.name!r} gives images of shape (C, H, W) = {tuple(loader.image_shape)}, "
            f"but task {task.name!r} needs {want}"
        )
    value_range = loader.value_range if isinstance(loader, ToolkitH5Loader) else (-1.0, 1.0)
    if tuple(value_range) != tuple(spec.value_range):
        raise DataError(f"{where}: images are in {tuple(value_range)}, but task {task.name!r} needs {tuple(spec.value_range)}")
    if side in LABELLED_SIDES and task.estimator_labels is not None:
        have = loader.label_shapes
        for name, shape in task.estimator_labels.items():
            if name not in have:
                raise DataError(
                    f"{where}: task {task.name!r} needs label {name!r} (per-image shape {tuple(shape)}) on its {side} "
                    f"images; format {loader.name!r} gives {', '.join(f'{k} {v}' for k, v in have.items()) or 'no labels'}"
                )
            if tuple(have[name]) != tuple(shape):
                raise DataError(f"{where}: label {name!r} has per-image shape {tuple(have[name])}, task {task.name!r} needs {tuple(shape)}")
    with _naming(where):  # also loader.units() failing: a missing folder, an unreadable index file
        data, _ = sample_dataset(loader, root, n, seed, skip_bad=source.skip_bad, progress=progress)
    note = f", fewer than data.n_{side} = {n}: using all of them" if len(data) < n else ""
    say(f"data.{side}: {len(data)} images from {source.path} (format {loader.name}){note}")
    return data if side in LABELLED_SIDES else LabelledImages(data.images)
