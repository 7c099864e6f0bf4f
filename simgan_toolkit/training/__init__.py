"""SimGAN training: the networks it trains, the loop, the history buffer, checkpoints, sample grids and the metrics log."""

from simgan_toolkit.training.build import SimGANNetworks, build_simgan_networks, refiner_spec
from simgan_toolkit.training.checkpoint import TrainerCheckpointer, load_checkpoint, save_checkpoint
from simgan_toolkit.training.history_buffer import HistoryBuffer
from simgan_toolkit.training.trainer import PHASES, SimGANTrainer, TrainingOutcome

__all__ = [
    "PHASES", "HistoryBuffer", "SimGANNetworks", "SimGANTrainer", "TrainerCheckpointer", "TrainingOutcome",
    "build_simgan_networks",
    "load_checkpoint", "refiner_spec", "save_checkpoint",
]
