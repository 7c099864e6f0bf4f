"""Checkpoints: the atomic file underneath, and the trainer's ``checkpoints/last.pt`` on top.

:func:`save_checkpoint` / :func:`load_checkpoint` write and read any state dict atomically
(written to a temporary file, then renamed over the old one). A full disk is a one-line error
naming the checkpoint ("no space left on device"), and the previous checkpoint stays intact,
so the run resumes from it once space is freed.

:class:`TrainerCheckpointer` is everything the training loop knows about checkpoints: what goes
into one (format ``simgan-toolkit/trainer-1``), restoring it, when to write one, and the
resume-compatibility check.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from simgan_toolkit.config import check_resume_compatible
from simgan_toolkit.errors import DataError, TrainingDivergedError
from simgan_toolkit.io import atomic_torch_save
from simgan_toolkit.training import distributed as dist_utils

if TYPE_CHECKING:
    from simgan_toolkit.training.trainer import SimGANTrainer

#: The ``format`` key of a trainer checkpoint (:func:`load_checkpoint` requires the key to be present).
CHECKPOINT_FORMAT = "simgan-toolkit/trainer-1"
#: The training phases in order; a checkpoint names the one it was written in (and its step).
PHASES = ("refiner_pretrain", "discriminator_pretrain", "adversarial")


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """``torch.save(state)`` to ``path`` atomically; a crash leaves the previous checkpoint intact.

    Raises:
        DataError: the filesystem refused the write (e.g. no space left), naming ``path``.
    """
    atomic_torch_save(state, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, with a clear error if it is not one."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"checkpoint {str(p)!r} does not exist")
    try:
        state = torch.load(p, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise DataError(f"checkpoint {str(p)!r} cannot be read ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or "format" not in state:
        raise DataError(f"checkpoint {str(p)!r} is not a simgan-toolkit checkpoint (no 'format' key)")
    return state


class TrainerCheckpointer:
    """``checkpoints/last.pt`` of one trainer: what it holds, restoring it, when to write it.

    It reads and restores the trainer's own members (networks, optimisers, history buffer,
    random generators, phase and step), so a resumed run continues exactly where the
    checkpoint was written (on the CPU bit for bit).

    Args:
        trainer: the trainer whose state is saved and restored.
        out_dir: the run folder; None writes and resumes nothing.
    """

    def __init__(self, trainer: SimGANTrainer, out_dir: Path | None) -> None:
        self.trainer = trainer
        #: ``out_dir/checkpoints/last.pt``, or None when nothing is written.
        self.path = out_dir / "checkpoints" / "last.pt" if out_dir else None

    def due(self, step: int, at_phase_end: bool) -> bool:
        """Whether the loop writes a checkpoint after ``step``: every ``train.checkpoint_every``
        steps and at the end of each phase."""
        return step % self.trainer.config.train.checkpoint_every == 0 or at_phase_end

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint's contents: plain (unwrapped) modules' weights, optimiser states, the
        history buffer's (n, C, h, w) images, generator states, phase/step, the run config, the
        refiner's spec (so ``refine`` can rebuild it) and the image spec."""
        t = self.trainer
        ema = t.refiner_ema
        return {
            "format": CHECKPOINT_FORMAT,
            "phase": t.phase,
            "step": t.step,
            "refiner": t.refiner.state_dict(),
            # The weight average as a plain refiner state dict (what `refine` loads when present)
            # and how many updates it has had (0 would make the next update copy, not average).
            "refiner_ema": ema.module.state_dict() if ema is not None else None,
            "refiner_ema_updates": int(ema.n_averaged) if ema is not None else None,
            "discriminator": t.discriminator.state_dict(),
            "opt_r": t.opt_r.state_dict(),
            "opt_d": t.opt_d.state_dict(),
            "buffer": t.buffer.state_dict() if t.buffer is not None else None,
            "index_gen": t.index_gen.get_state(),
            "noise_gen": t.noise_gen.get_state(),
            "config": t.config.model_dump(mode="json"),
            "refiner_spec": t.refiner_spec,
            "image_spec": {
                "channels": t.image_spec.channels,
                "height": t.image_spec.height,
                "width": t.image_spec.width,
                "value_range": list(t.image_spec.value_range),
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the trainer from :meth:`state_dict` (a checkpoint written by rank 0).

        Under DDP every rank loads rank 0's checkpoint: weights, optimiser states, step and the
        history buffer's images. Ranks other than 0 then reseed their index/noise generators
        from (seed, rank, phase, step), so that they do not replay rank 0's batches; a resumed
        multi-process run is therefore not bit-identical to an uninterrupted one.
        """
        t = self.trainer
        t.refiner.load_state_dict(state["refiner"])
        if t.refiner_ema is not None:
            t.refiner_ema.module.load_state_dict(state["refiner_ema"])
            t.refiner_ema.n_averaged.fill_(state["refiner_ema_updates"])
        t.discriminator.load_state_dict(state["discriminator"])
        t.opt_r.load_state_dict(state["opt_r"])
        t.opt_d.load_state_dict(state["opt_d"])
        if t.buffer is not None and state["buffer"] is not None:
            t.buffer.load_state_dict(state["buffer"], t.device)
        t.index_gen.set_state(state["index_gen"])
        t.noise_gen.set_state(state["noise_gen"])
        t.phase, t.step = state["phase"], state["step"]
        if t.rank > 0:
            seed = (t.stream_seed * 1_000_003 + PHASES.index(t.phase) * 100_003 + t.step) % 2**63
            t.index_gen.manual_seed(seed)
            t.noise_gen.manual_seed(seed + 1)

    def save(self) -> None:
        """Write ``checkpoints/last.pt`` atomically (after checking the weights are finite).

        Waits for the device (a checkpoint is one of the loop's two sync points). Under DDP
        every rank checks the weights (they are identical everywhere, so all ranks stop
        together on non-finite ones) and rank 0 alone writes the plain modules' weights.

        Raises:
            TrainingDivergedError: non-finite weights (the previous checkpoint stays intact).
        """
        if self.path is None:
            return
        t = self.trainer
        for name, net in (("refiner", t.refiner), ("discriminator", t.discriminator)):
            if not all(torch.isfinite(p).all() for p in net.parameters()):
                raise TrainingDivergedError(
                    f"{name} weights are not finite at {t.phase} step {t.step}; checkpoint not written "
                    "(the previous one is intact). Lower the learning rates or lambda."
                )
        if t.is_main:
            save_checkpoint(self.state_dict(), self.path)

    def resume(self) -> tuple[str, int] | None:
        """Load ``checkpoints/last.pt`` if it exists; returns the (phase, step) it resumed from.

        The checkpoint's training config must match this run's: a resumed run would otherwise
        silently mix two experiments (settings that only change how it executes, such as
        ``train.compile``, may differ); the error names each differing field. Under DDP every
        rank loads rank 0's checkpoint, then all wait for each other, so rank 0 cannot replace
        it while another rank still reads it.

        Without a checkpoint (deleted, or the run stopped before its first one) training
        restarts from step 0, with a warning, and so does metrics.jsonl: the records of the
        lost attempt would otherwise stand twice in it.
        """
        t = self.trainer
        if self.path is None:
            return None
        log = t.logger.log
        if not self.path.exists():
            if t.is_main:
                warnings.warn(f"no checkpoint in {str(self.path.parent)!r}: SimGAN training restarts from step 0", stacklevel=2)
            if log is not None:
                log.clear()
            return None
        state = load_checkpoint(self.path, map_location=t.device)
        check_resume_compatible(state["config"], t.config, str(self.path))
        self.load_state_dict(state)
        if log is not None:
            log.truncate_after(list(PHASES), t.phase, t.step)
        if t.distributed:
            dist_utils.barrier()
        return t.phase, t.step
