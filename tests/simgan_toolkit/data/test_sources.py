"""One side of a run from disk (``load_side``): sampling, counts and the checks against the task."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch

from simgan_toolkit.config import DataSource
from simgan_toolkit.data import write_images_h5
from simgan_toolkit.data.sources import load_side
from simgan_toolkit.errors import DataError
from simgan_toolkit.task import ImageSpec, LabelledImages, MetricSpec, Task


class FakeTask(Task):
    """Only what load_side looks at: the image spec and the declared labels."""

    name = "fake"

    def __init__(self, labels=None, channels=1):
        self._labels, self._channels = labels, channels

    image_spec = property(lambda self: ImageSpec(self._channels, 12, 16))
    estimator_labels = property(lambda self: self._labels)
    estimator_output_dim = 2
    primary_metric = MetricSpec("m", True)

    def synthetic(self, n, seed, device):
        raise NotImplementedError

    target = target_labelled = synthetic

    def estimator_loss(self, prediction, labels):
        raise NotImplementedError

    estimator_metrics = label_preservation = estimator_loss


def _load(npz, root, n, seed=0, side="synthetic", task=None, notes=None, **source):
    return load_side(
        npz.registry(), task or FakeTask({"y": (2,)}), side, DataSource(path=str(root), **source), n, seed,
        progress=False, say=(notes.append if notes is not None else lambda _: None),
    )


def _rows(data: LabelledImages) -> list[tuple[float, float]]:
    return [tuple(r) for r in data.labels["y"].tolist()]


def test_a_sample_is_seeded_and_keeps_images_with_their_labels(tmp_path, npz):
    expected = npz.write(tmp_path / "ds", [1] * 40)  # one image per unit, told apart by its label
    by_label = {tuple(y): i for i, y in enumerate(expected.labels["y"].tolist())}
    a = _load(npz, tmp_path / "ds", 4, seed=3)
    assert len(a) == 4
    rows = [by_label[r] for r in _rows(a)]
    assert len(set(rows)) == 4
    assert torch.equal(a.images, expected.images[rows])  # images stay with their labels
    assert _rows(_load(npz, tmp_path / "ds", 4, seed=3)) == _rows(a)  # same seed, same sample
    assert _rows(_load(npz, tmp_path / "ds", 4, seed=4)) != _rows(a)


def _unit_dataset(npz, root, units: int, per_unit: int):
    """``units`` units of ``per_unit`` images each; label y = (unit, row in unit)."""
    import numpy as np

    root.mkdir(parents=True)
    (root / npz.marker).write_text("")
    for u in range(units):
        y = np.stack([np.full(per_unit, u), np.arange(per_unit)], axis=1).astype(np.float32)
        npz.unit(root, f"u{u:02d}", np.full((per_unit, 1, 12, 16), u, np.uint8), y)


def test_a_sample_mixes_units_of_many_alike_images(tmp_path, npz):
    """Units of many consecutive alike images (an MPIIGaze person-day, a Kaggle chunk): a small
    sample must not come from one unit, nor be each unit's first rows."""
    _unit_dataset(npz, tmp_path / "ds", units=6, per_unit=40)
    data = _load(npz, tmp_path / "ds", 24, seed=0)
    units = [int(u) for u, _ in _rows(data)]
    assert len(data) == 24 and len(set(units)) >= 4
    assert max(units.count(u) for u in set(units)) <= 12
    assert any(row >= 24 for _, row in _rows(data))  # not just the head of each unit
    assert torch.equal(data.images[:, 0, 0, 0], (torch.tensor(units, dtype=torch.float32) / 127.5 - 1))
    assert _rows(_load(npz, tmp_path / "ds", 24, seed=0)) == _rows(data)


def test_a_sample_of_a_large_dataset_reads_only_part_of_it(tmp_path, npz):
    _unit_dataset(npz, tmp_path / "ds", units=40, per_unit=5)

    class Counting(npz.Loader):
        opened: ClassVar[list[str]] = []

        def read_unit(self, unit):
            Counting.opened.append(unit.key)
            return super().read_unit(unit)

    data = load_side(npz.registry(Counting), FakeTask({"y": (2,)}), "synthetic", DataSource(path=str(tmp_path / "ds")),
                     10, 0, progress=False, say=lambda _: None)
    assert len(data) == 10
    assert len(Counting.opened) == 16  # at least 16 units and n + 2 units' worth of rows
    assert len({u for u, _ in _rows(data)}) >= 5


def test_fewer_images_than_asked_uses_all_and_says_so(tmp_path, npz):
    expected = npz.write(tmp_path / "ds", [2, 3])
    notes: list[str] = []
    data = _load(npz, tmp_path / "ds", 100, side="test", notes=notes)
    assert sorted(_rows(data)) == sorted(_rows(expected))
    assert notes == [f"data.test: 5 images from {tmp_path / 'ds'} (format npz), fewer than data.n_test = 100: using all of them"]


def test_target_side_drops_labels_and_needs_none(tmp_path, npz):
    npz.write(tmp_path / "ds", [3])
    data = _load(npz, tmp_path / "ds", 3, side="target", task=FakeTask({"missing": (1,)}))
    assert data.labels == {} and data.images.shape == (3, 1, 12, 16)


def test_wrong_channels_names_path_and_both_shapes(tmp_path, npz):
    npz.write(tmp_path / "ds", [1])
    with pytest.raises(DataError) as err:
        _load(npz, tmp_path / "ds", 1, side="target", task=FakeTask(channels=3))
    assert str(err.value) == (
        f"data.target.path {str(tmp_path / 'ds')!r}: format 'npz' gives images of shape (C, H, W) = (1, 12, 16), "
        "but task 'fake' needs (3, 12, 16)"
    )


def test_missing_or_misshapen_declared_label(tmp_path, npz):
    npz.write(tmp_path / "ds", [1])
    with pytest.raises(DataError, match=r"data\.target_train\.path .*needs label 'gaze' \(per-image shape \(3,\)\) on its target_train images; format 'npz' gives y \(2,\)"):
        _load(npz, tmp_path / "ds", 1, side="target_train", task=FakeTask({"gaze": (3,)}))
    with pytest.raises(DataError, match=r"label 'y' has per-image shape \(2,\), task 'fake' needs \(4,\)"):
        _load(npz, tmp_path / "ds", 1, task=FakeTask({"y": (4,)}))


def test_value_range_of_a_toolkit_file_must_be_the_tasks(tmp_path, npz):
    write_images_h5(tmp_path / "d.h5", LabelledImages(torch.zeros(2, 1, 12, 16)), {"value_range": [0.0, 1.0]})
    with pytest.raises(DataError, match=r"images are in \(0\.0, 1\.0\), but task 'fake' needs \(-1\.0, 1\.0\)"):
        _load(npz, tmp_path / "d.h5", 2, side="target")


def test_bad_file_names_the_side_or_is_skipped(tmp_path, npz):
    npz.write(tmp_path / "ds", [1, 1, 1])
    (tmp_path / "ds" / "u01.npz").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"^data\.synthetic\.path .*u01\.npz: cannot read"):
        _load(npz, tmp_path / "ds", 3)
    with pytest.warns(UserWarning, match="skipped 1 of 3 units"):
        assert len(_load(npz, tmp_path / "ds", 3, skip_bad=True)) == 2


def test_a_unit_listing_error_names_the_side(tmp_path, npz):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(DataError, match=r"^data\.test\.path .*file.*: .*not an npz dataset folder"):
        _load(npz, tmp_path / "file", 3, side="test", format="npz")


def test_the_streamed_draw_keeps_the_n_rows_of_lowest_priority():
    from simgan_toolkit.data.reading import _Reservoir

    generator = torch.Generator().manual_seed(0)
    reservoir, rows, priorities = _Reservoir(7), [], []
    start = 0
    for m in (3, 0, 2, 9, 1, 5):
        ids = torch.arange(start, start + m, dtype=torch.float32)
        start += m
        priority = torch.rand(m, generator=generator, dtype=torch.float64)
        reservoir.add(LabelledImages(ids.view(m, 1, 1, 1), {"id": ids}), priority)
        rows.append(ids)
        priorities.append(priority)
    got = reservoir.result()
    expected = torch.cat(rows)[torch.topk(torch.cat(priorities), 7, largest=False).indices]
    assert sorted(got.labels["id"].tolist()) == sorted(expected.tolist())
    assert torch.equal(got.images.flatten(), got.labels["id"])  # rows stay whole
    small = _Reservoir(10)
    small.add(LabelledImages(torch.zeros(3, 1, 1, 1), {}), torch.rand(3, dtype=torch.float64))
    assert len(small.result()) == 3
