"""Sample grids: layout arithmetic, hand-computed pixel values, PNG output."""

from __future__ import annotations

import torch
from PIL import Image

from simgan_toolkit.training.sample_grid import sample_grid, save_sample_grid

H, W, PAD = 5, 7, 2


def tile(grid, row, col):
    """Tile (row, col) of a make_grid layout with padding 2."""
    y, x = PAD + row * (H + PAD), PAD + col * (W + PAD)
    return grid[:, y : y + H, x : x + W]


def _inputs(n=3):
    synthetic = torch.zeros(n, 1, H, W)  # -> 0.5 on display
    refined = torch.full((n, 1, H, W), 0.5)  # -> 0.75; |diff| = 0.25 * gain 4 = 1.0
    refined[1] = 0.05  # -> 0.525; |diff| = 0.025 * 4 = 0.1
    refined[2] = 7.0  # clamped to 1.0
    real = torch.full((2, 1, H, W), -1.0)  # -> 0.0, repeated for the third row
    real[1] = 1.0
    return synthetic, refined, real


def test_shape_is_four_columns_n_rows_padding_two():
    synthetic, refined, real = _inputs(3)
    grid = sample_grid(synthetic, refined, real)
    # rows: 3 * (5 + 2) + 2 = 23; columns: 4 * (7 + 2) + 2 = 38
    assert grid.shape == (3, 3 * (H + PAD) + PAD, 4 * (W + PAD) + PAD) == (3, 23, 38)
    assert grid.min() >= 0.0 and grid.max() <= 1.0


def test_hand_computed_tiles_and_padding():
    synthetic, refined, real = _inputs(3)
    grid = sample_grid(synthetic, refined, real)
    expected = [
        [0.5, 0.75, 0.0, 1.0],
        [0.5, 0.525, 1.0, 0.1],
        [0.5, 1.0, 0.0, 1.0],  # real repeats (index 2 % 2 = 0); refined clamped to 1
    ]
    for r, row in enumerate(expected):
        for c, value in enumerate(row):
            assert torch.allclose(tile(grid, r, c), torch.full((3, H, W), value), atol=1e-6), (r, c)
    assert torch.equal(grid[:, 0, :], torch.ones(3, grid.shape[2]))  # pad value 1
    assert torch.equal(grid[:, :, 0], torch.ones(3, grid.shape[1]))


def test_value_range_and_multichannel():
    x = torch.zeros(2, 4, H, W)
    x[:, 0] = 255.0
    x[:, 1:] = 0.0
    grid = sample_grid(x, x, x, value_range=(0.0, 255.0))
    assert grid.shape == (3, 2 * (H + PAD) + PAD, 4 * (W + PAD) + PAD)
    assert torch.allclose(tile(grid, 0, 0), torch.ones(3, H, W))  # first channel shown, in [0, 1]
    assert torch.allclose(tile(grid, 1, 3), torch.zeros(3, H, W))  # no difference
    rgb = torch.zeros(1, 3, H, W)
    rgb[:, 0] = 1.0
    g = sample_grid(rgb, rgb, rgb)
    assert torch.allclose(tile(g, 0, 0)[0], torch.ones(H, W)) and torch.allclose(tile(g, 0, 0)[1], torch.full((H, W), 0.5))


def test_png_written_and_readable(tmp_path):
    synthetic, refined, real = _inputs(3)
    grid = sample_grid(synthetic, refined, real)
    path = tmp_path / "samples" / "step.png"
    save_sample_grid(grid, path, scale=3)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.mode == "RGB"
        assert img.size == (38 * 3, 23 * 3)
        # Pixel inside tile (0, 0): 0.5 * 255 rounds to 128; tile (0, 1): 0.75 -> 191.
        assert img.getpixel((3 * (PAD + 1), 3 * (PAD + 1))) == (128, 128, 128)
        assert img.getpixel((3 * (PAD + W + PAD + 1), 3 * (PAD + 1))) == (191, 191, 191)
        assert img.getpixel((0, 0)) == (255, 255, 255)
    assert [p.name for p in path.parent.iterdir()] == ["step.png"]
