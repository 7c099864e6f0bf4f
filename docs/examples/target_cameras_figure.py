"""Draw the simulator next to every target camera, same seeds (so the same eyes and hands).

    python docs/examples/target_cameras_figure.py  # writes docs/images/*_target_cameras.png
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from simgan_gaze.nir import simulate_nir_eyes
from simgan_gaze.simulator import simulate_eyes
from simgan_gaze.target import simulate_target_eyes
from simgan_gaze.webcam import simulate_webcam_eyes
from simgan_hand.kinect import simulate_kinect_hands
from simgan_hand.simulator import simulate_hands
from simgan_hand.stereo import simulate_stereo_hands
from simgan_hand.tof import simulate_tof_hands

IMAGES = Path(__file__).resolve().parents[1] / "images"


def _grid(rows: list[tuple[str, torch.Tensor]], path: Path, cell: tuple[float, float]) -> None:
    n = rows[0][1].shape[0]
    fig, axes = plt.subplots(len(rows), n, figsize=(cell[0] * n, cell[1] * len(rows)), squeeze=False)
    for r, (title, images) in enumerate(rows):
        for c in range(n):
            img = ((images[c].permute(1, 2, 0) + 1) / 2).clamp(0, 1)
            ax = axes[r, c]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(title, rotation=0, ha="right", va="center", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    def g() -> torch.Generator:
        return torch.Generator().manual_seed(5)

    n = 8
    gaze = [
        ("simulator", simulate_eyes(n, g())[0]),
        ("target (gaze)", simulate_target_eyes(n, g())[0]),
        ("NIR tracker", simulate_nir_eyes(n, g())[0]),
        ("webcam (grey)", simulate_webcam_eyes(n, g())[0]),
        ("simulator RGB", simulate_eyes(n, g(), rgb=True)[0]),
        ("webcam RGB", simulate_webcam_eyes(n, g(), rgb=True)[0]),
    ]
    _grid(gaze, IMAGES / "gaze_target_cameras.png", (1.3, 0.9))
    n = 6
    hand = [
        ("simulator\n(hand_depth)", simulate_hands(n, g(), scene="randomised")[0]),
        ("simulator\n(hand_depth_wall)", simulate_hands(n, g(), scene="hand_arm_wall")[0]),
        ("Kinect", simulate_kinect_hands(n, g())[0]),
        ("ToF", simulate_tof_hands(n, g())[0]),
        ("stereo", simulate_stereo_hands(n, g())[0]),
    ]
    _grid(hand, IMAGES / "hand_target_cameras.png", (1.8, 1.8))


if __name__ == "__main__":
    main()
