"""History buffer, checked with marker images (each image filled with one distinct constant)."""

from __future__ import annotations

import pytest
import torch

from simgan_toolkit.training import HistoryBuffer


def marked(*values: float) -> torch.Tensor:
    """(n, 1, 2, 3) images, image i filled with values[i]."""
    return torch.tensor(values, dtype=torch.float32).reshape(-1, 1, 1, 1).expand(-1, 1, 2, 3).clone()


def marks(images: torch.Tensor) -> list[float]:
    flat = images.flatten(1)
    assert torch.equal(flat, flat[:, :1].expand_as(flat)), "an image is not a marker image"
    return flat[:, 0].tolist()


def slots(buf: HistoryBuffer) -> list[float]:
    return marks(buf.state_dict()["images"])


def test_fills_sequentially_until_full():
    buf = HistoryBuffer(5, torch.Generator().manual_seed(0))
    assert len(buf) == 0 and not buf.full
    buf.push(marked(0, 1, 2))
    assert len(buf) == 3 and slots(buf) == [0, 1, 2]
    buf.push(marked(3, 4))
    assert buf.full and slots(buf) == [0, 1, 2, 3, 4]


def test_overflowing_push_fills_then_replaces_exactly_the_rest():
    buf = HistoryBuffer(5, torch.Generator().manual_seed(0))
    buf.push(marked(0, 1, 2))
    buf.push(marked(3, 4, 5, 6))  # 2 free slots take 3, 4; then 5, 6 replace 2 random slots
    s = slots(buf)
    assert len(s) == 5 and buf.full
    assert s.count(5) == 1 and s.count(6) == 1
    assert len(set(s)) == 5
    assert sum(v in {0, 1, 2, 3, 4} for v in s) == 3  # exactly two old images replaced


def test_full_buffer_replaces_exactly_n_random_slots():
    buf = HistoryBuffer(6, torch.Generator().manual_seed(1))
    buf.push(marked(*range(6)))
    ever_replaced: set[int] = set()
    for round_ in range(30):
        before = slots(buf)
        new = [100.0 + 2 * round_, 101.0 + 2 * round_]
        buf.push(marked(*new))
        after = slots(buf)
        changed = [i for i in range(6) if before[i] != after[i]]
        assert len(changed) == 2
        assert sorted(after[i] for i in changed) == new
        ever_replaced.update(changed)
        assert len(buf) == 6
    assert ever_replaced == set(range(6))  # random slots, not always the same ones


def test_replacement_is_reproducible_with_seeded_generator():
    def run(seed):
        b = HistoryBuffer(4, torch.Generator().manual_seed(seed))
        for i in range(5):
            b.push(marked(3 * i, 3 * i + 1, 3 * i + 2))
        return slots(b)

    assert run(3) == run(3)
    assert any(run(3) != run(s) for s in (4, 5, 6))


def test_push_detaches():
    buf = HistoryBuffer(2)
    x = marked(1, 2).requires_grad_(True)
    buf.push(x * 2)
    assert not buf.sample(2).requires_grad


def test_push_empty_is_noop():
    buf = HistoryBuffer(3)
    buf.push(torch.zeros(0, 1, 2, 3))
    assert len(buf) == 0


def test_sample_returns_distinct_stored_images():
    buf = HistoryBuffer(8, torch.Generator().manual_seed(0))
    buf.push(marked(10, 11, 12, 13, 14))
    for _ in range(10):
        got = marks(buf.sample(4))
        assert len(set(got)) == 4
        assert set(got) <= {10, 11, 12, 13, 14}
    assert sorted(marks(buf.sample(5))) == [10, 11, 12, 13, 14]


@pytest.mark.parametrize("held,want", [(0, 1), (3, 4)])
def test_sample_too_many(held, want):
    buf = HistoryBuffer(8)
    if held:
        buf.push(marked(*range(held)))
    with pytest.raises(ValueError, match=f"cannot sample {want} images from a history buffer holding {held}"):
        buf.sample(want)


def test_mix_all_fresh_until_half_batch_stored_then_half_and_half():
    buf = HistoryBuffer(10, torch.Generator().manual_seed(0))
    first = marked(100, 101, 102, 103)
    out = buf.mix(first)
    assert torch.equal(out, first)  # empty buffer: all fresh
    assert slots(buf) == [100, 101]  # b/2 fresh images pushed
    out = buf.mix(marked(200, 201, 202, 203))
    got = marks(out)
    assert got[:2] == [200, 201]  # b/2 fresh ...
    assert sorted(got[2:]) == [100, 101]  # ... b/2 distinct from the buffer (pushed before sampling)
    assert slots(buf) == [100, 101, 200, 201]


def test_mix_below_half_batch_returns_fresh():
    buf = HistoryBuffer(10)
    buf.push(marked(1))
    fresh = marked(5, 6, 7, 8)
    assert torch.equal(buf.mix(fresh), fresh)
    assert slots(buf) == [1, 5, 6]


def test_mix_of_single_image_is_untouched():
    buf = HistoryBuffer(3)
    fresh = marked(9)
    assert torch.equal(buf.mix(fresh), fresh)
    assert len(buf) == 0


def test_state_dict_round_trip():
    gen = torch.Generator().manual_seed(0)
    buf = HistoryBuffer(4, gen)
    buf.push(marked(1, 2, 3, 4, 5, 6))
    state = buf.state_dict()
    assert state["capacity"] == 4 and state["images"].shape == (4, 1, 2, 3)
    other = HistoryBuffer(4)
    other.load_state_dict({"capacity": 4, "images": state["images"].clone()})
    assert len(other) == 4 and other.full
    assert slots(other) == slots(buf)
    partial = HistoryBuffer(4)
    partial.push(marked(7))
    copy = HistoryBuffer(4)
    copy.load_state_dict(partial.state_dict())
    assert slots(copy) == [7.0] and len(copy) == 1
    empty = HistoryBuffer(4)
    empty.load_state_dict(HistoryBuffer(4).state_dict())
    assert len(empty) == 0 and HistoryBuffer(4).state_dict()["images"] is None


def test_load_state_dict_replaces_previous_contents():
    buf = HistoryBuffer(4)
    buf.push(marked(1, 2, 3))
    buf.load_state_dict({"capacity": 4, "images": marked(8)})
    assert slots(buf) == [8.0]


def test_capacity_mismatch():
    with pytest.raises(ValueError, match="capacity 5 != configured 4"):
        HistoryBuffer(4).load_state_dict({"capacity": 5, "images": None})


def test_shape_mismatch_and_bad_capacity():
    buf = HistoryBuffer(4)
    buf.push(marked(1))
    with pytest.raises(ValueError, match="holds images of shape"):
        buf.push(torch.zeros(1, 1, 3, 3))
    with pytest.raises(ValueError, match=">= 1"):
        HistoryBuffer(0)


def test_mix_with_odd_batch():
    buf = HistoryBuffer(10, torch.Generator().manual_seed(0))
    buf.mix(marked(1, 2, 3, 4, 5))  # stores 2
    out = buf.mix(marked(6, 7, 8, 9, 10))
    assert out.shape[0] == 5
