"""SimGAN training: the loop, the history buffer, checkpoints, sample grids and the metrics log."""

from simgan_toolkit.training.checkpoint import load_checkpoint, save_checkpoint
from simgan_toolkit.training.history_buffer import HistoryBuffer
from simgan_toolkit.training.trainer import PHASES, SimGANTrainer, TrainingOutcome

__all__ = ["PHASES", "HistoryBuffer", "SimGANTrainer", "TrainingOutcome", "load_checkpoint", "save_checkpoint"]
