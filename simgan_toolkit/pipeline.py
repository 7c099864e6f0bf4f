"""The main job: simulate, train SimGAN, refine, export, train and score estimators, report.

``python -m simgan_toolkit.run --task NAME`` calls :func:`run_pipeline`. Every stage writes its
result into the run folder, so ``--resume`` skips finished stages and continues SimGAN
training from its last checkpoint.

Each side of the data (synthetic, real, test, target_train) comes from the task's generators
or, when the config sets ``data.<side> = {path = ..., format = ..., options = {...}}``, from a
dataset on disk (see :mod:`simgan_toolkit.data.sources`).

Under ``torchrun --nproc_per_node N -m simgan_toolkit.run ...`` SimGAN trains with
DistributedDataParallel on N processes (:mod:`simgan_toolkit.training.distributed`):

- all ranks: check the run folder, simulate/load the data, train SimGAN (each rank its own
  batches, history buffer and random streams; gradients averaged; the global batch is N x
  ``train.batch_size``);
- rank 0 only: every file (config.json, metrics, samples, checkpoints, ...), the estimator
  stages, refine, export, figures and summary. When psi is ``learned`` from this run's
  synthetic estimator, rank 0 trains that estimator first and the others load it from
  ``estimators/synthetic.pt``; otherwise rank 0 trains it after SimGAN, so no GPU idles;
- ranks other than 0 leave once SimGAN training is done (their return value is a short
  dict with ``rank``, ``world_size`` and ``simgan_final``).

Run folder::

    config.json          the resolved configuration
    metrics.jsonl        per-step SimGAN losses
    samples/*.png        synthetic | refined | real | |refined - synthetic|
    checkpoints/last.pt  trainer checkpoint (refiner, discriminator, optimisers, buffer, RNG)
    refined.h5           the refined synthetic set with its labels (toolkit HDF5 layout)
    estimators/<set>.pt  estimator trained on each training set, and <set>.json its scores;
                         <set>_seed<k>.{pt,json} for the further seeds of synthetic and refined
    *.png                the task's result plots, if it draws any (e.g. a PCK curve)
    summary.json         task, profile, device, wall time, scores (per seed too), label
                         preservation, the refinement verdict

The verdict: the synthetic and refined estimators are trained with ``estimator.seeds`` seeds
(default 2); refinement "helped" only if the refined mean beats the synthetic mean by more than
the noise, the larger max-min spread over seeds of the two rows
(:func:`simgan_toolkit.report.refinement_verdict`).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from simgan_toolkit import __version__
from simgan_toolkit.config import DataSource, RunConfig, config_differences, describe_differences, load_config_file, resume_comparable
from simgan_toolkit.data.hdf5 import write_images_h5
from simgan_toolkit.data.sources import LABELLED_SIDES, load_side
from simgan_toolkit.errors import ConfigError, DataError, PluginError
from simgan_toolkit.estimation import build_estimator, estimator_options, evaluate_estimator, save_estimator, train_estimator
from simgan_toolkit.features import FeatureTransform, Learned
from simgan_toolkit.io import atomic_write_json, is_toolkit_temp_file, remove_stale_temp_files
from simgan_toolkit.losses import SimGANLoss
from simgan_toolkit.plugin import Registry
from simgan_toolkit.refine import refine_images
from simgan_toolkit.report import format_results_table, refinement_verdict
from simgan_toolkit.task import LabelledImages, Task
from simgan_toolkit.training import SimGANTrainer
from simgan_toolkit.training import distributed as dist_utils

# Fixed offsets keep every data source independent of the others and of the run's seed use.
_SEED_SYNTHETIC, _SEED_REAL, _SEED_TEST, _SEED_TARGET_TRAIN = 101, 202, 303, 404
#: The training sets the refinement verdict compares, trained with ``estimator.seeds`` seeds each.
VERDICT_SETS = ("synthetic", "refined")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA if available, else CPU; otherwise the named device (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"device: {name!r} is not a device name ({exc})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} requested but CUDA is not available on this machine")
    return device


def select_loss(registry: Registry, name: str, device: torch.device) -> tuple[str, SimGANLoss]:
    """The loss implementation named, or with ``auto`` the available one of highest priority."""
    if name == "auto":
        candidates = [e for e in registry.entries("loss") if e.available(device)]
        if not candidates:
            raise PluginError(f"no registered loss implementation is available on {device}")
        entry = max(candidates, key=lambda e: e.priority)
    else:
        entry = registry.get("loss", name)
        if not entry.available(device):
            raise ConfigError(f"train.loss: {name!r} (plugin {entry.plugin!r}) is not available on {device}")
    return entry.name, entry.factory()


def to_device(module: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    """``module`` on ``device``, its weights channels-last (NHWC) when the config asks for it."""
    module = module.to(device)
    return module.to(memory_format=torch.channels_last) if channels_last else module  # type: ignore[call-overload]


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment_info(device: torch.device) -> dict[str, Any]:
    """Versions and machine facts stored beside every result (``world_size``: training processes)."""
    info: dict[str, Any] = {
        "simgan_toolkit": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "cpu_threads": torch.get_num_threads(),
        "world_size": dist_utils.world_size(),
        "commit": _git_commit(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


class _Stages:
    """Timing of each stage, for the summary."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.seconds: dict[str, float] = {}
        self.say = say

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        self.say(f"[{name}]")
        start = time.perf_counter()
        result = fn()
        self.seconds[name] = round(time.perf_counter() - start, 2)
        return result


def _load_estimator_weights(model: nn.Module, path: Path, device: torch.device) -> nn.Module:
    model.load_state_dict(torch.load(path, map_location=device, weights_only=False)["state_dict"])
    return model


def estimator_seed_count(config: RunConfig, train_set: str) -> int:
    """Estimator seeds trained on ``train_set``: ``estimator.seeds`` for the two rows the
    verdict compares (synthetic, refined), one for the others."""
    return config.estimator.seeds if train_set in VERDICT_SETS else 1


def _estimator_stage(
    task: Task, config: RunConfig, registry: Registry, out_dir: Path, train_set: str, data: LabelledImages,
    test: LabelledImages, device: torch.device, progress: bool, resume: bool, seed_index: int = 0,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train (or, when resuming, reload) the estimator of seed ``config.seed + seed_index`` on
    one training set and score it. Seed index 0 writes ``estimators/<set>.{pt,json}``, index k
    ``estimators/<set>_seed<k>.{pt,json}``."""
    est_dir = out_dir / "estimators"
    name = train_set if seed_index == 0 else f"{train_set}_seed{seed_index}"
    result_path, model_path = est_dir / f"{name}.json", est_dir / f"{name}.pt"
    # Every training set starts from the same initial weights and batch order (per seed).
    seed = config.seed + seed_index
    torch.manual_seed(seed)
    model = to_device(build_estimator(task, config.estimator, registry), device, config.channels_last)
    if resume and result_path.exists() and model_path.exists():
        _load_estimator_weights(model, model_path, device)
        return model, json.loads(result_path.read_text())
    fit = train_estimator(task, model, data, config.estimator, seed, progress=progress, desc=f"estimator ({name})")
    metrics = evaluate_estimator(task, model, test)
    result = {"train_set": train_set, "seed": seed, "n_train": len(data), "metrics": metrics, **fit}
    save_estimator(model, config.estimator.name, estimator_options(task, config.estimator), model_path)
    atomic_write_json(result_path, result)
    return model, result


def build_feature_transform(config: RunConfig, registry: Registry, synthetic_estimator: nn.Module | None) -> FeatureTransform:
    """psi from the config; ``learned`` without a checkpoint uses this run's synthetic estimator."""
    if config.feature.name == "learned" and config.feature.checkpoint is None:
        if synthetic_estimator is None:
            raise ConfigError("feature.name = 'learned' without feature.checkpoint needs 'synthetic' in estimator.train_on")
        return Learned(copy.deepcopy(synthetic_estimator))
    return registry.create(
        "feature_transform", config.feature.name, checkpoint=config.feature.checkpoint, registry=registry, **config.feature.options
    )


def build_simgan(
    config: RunConfig, registry: Registry, task: Task, device: torch.device, synthetic_estimator: nn.Module | None = None,
) -> tuple[nn.Module, nn.Module, FeatureTransform, str, SimGANLoss]:
    """Refiner, discriminator, psi and loss of ``config``, on ``device``; weights seeded by ``config.seed``.

    Returns ``(refiner, discriminator, psi, loss_name, loss)``. ``synthetic_estimator`` backs
    ``feature.name = "learned"`` when no checkpoint is given.
    """
    spec = task.image_spec
    torch.manual_seed(config.seed)
    refiner = registry.create("refiner", config.refiner.name, in_channels=spec.channels, **config.refiner.factory_options())
    refiner = to_device(refiner, device, config.channels_last)
    # With crop training the discriminator only ever sees crops: a global one is sized for them.
    d_height = config.train.crop_size or spec.height
    d_width = config.train.crop_size or spec.width
    discriminator = registry.create(
        "discriminator", config.discriminator.name, in_channels=spec.channels, image_height=d_height, image_width=d_width,
        **config.discriminator.factory_options(),
    )
    discriminator = to_device(discriminator, device, config.channels_last)
    psi = to_device(build_feature_transform(config, registry, synthetic_estimator), device, config.channels_last)
    loss_name, loss = select_loss(registry, config.train.loss, device)
    return refiner, discriminator, psi, loss_name, loss


def _check_same_config(saved_path: Path, config: RunConfig) -> None:
    """A resumed run must use the saved run's settings (the device and execution-only train
    settings such as ``train.compile`` may change); the error names each differing field."""
    folder = str(saved_path.parent)
    try:
        saved_settings = load_config_file(saved_path)
    except ConfigError as exc:  # e.g. truncated by a full disk or an editor
        raise ConfigError(f"cannot resume {folder!r}: {exc}; restore it or start a new run with another --out") from None
    saved, current = resume_comparable(saved_settings), resume_comparable(config.model_dump(mode="json"))
    saved.pop("device", None)
    current.pop("device", None)
    differences = config_differences(saved, current)
    if differences:
        raise ConfigError(
            f"cannot resume {folder!r}: its settings differ from this run's: {describe_differences(differences)} "
            "(see its config.json); use the same settings or a new --out directory"
        )


def _first_existing(path: Path) -> Path | None:
    """``path`` or its nearest ancestor that exists (None if none does, e.g. a relative path's top)."""
    return next((p for p in (path, *path.parents) if p.exists()), None)


def _remove_empty(folders: list[Path]) -> None:
    """Remove those of ``folders`` (deepest first) that are still empty: a failed start leaves none behind."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _check_holds_nothing_else(out: Path) -> None:
    """A new run goes into a new or empty folder: it would otherwise overwrite a user's files."""
    others = sorted(p.name for p in out.iterdir() if not is_toolkit_temp_file(p)) if out.is_dir() else []
    if others:
        listed = ", ".join(repr(n) for n in others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise ConfigError(
            f"output directory {str(out)!r} holds other files ({listed}) and no run; choose a new or empty --out"
        )


def create_run_folder(out: Path) -> list[Path]:
    """Create ``out`` and write and delete a probe file in it, before any long work.

    A folder the process cannot write to fails here (ConfigError naming it) instead of after
    the data is made. Returns the folders it created, deepest first, for :func:`_remove_empty`
    should the run fail before it writes config.json.
    """
    created = list(itertools.takewhile(lambda p: not p.exists(), (out, *out.parents)))
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", suffix=".tmp", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        _remove_empty(created)
        raise ConfigError(f"output directory {str(out)!r} is not writable: {exc.strerror or exc}") from None
    return created


def check_run_folder(out: Path, config: RunConfig, resume: bool) -> None:
    """Check, without writing anything, that ``out`` can take this run.

    Raises ConfigError (naming the folder) for: a path that is, or lies under, a file; a folder
    already holding a run, without ``resume``; with ``resume``, a folder without a run, or whose
    config.json is damaged or holds other settings (each differing field is named); a folder
    holding other files (a new run needs a new or empty folder).
    """
    existing = _first_existing(out)
    if existing is not None and not existing.is_dir():
        problem = "is a file, not a folder" if existing == out else f"cannot be created: {str(existing)!r} is a file, not a folder"
        raise ConfigError(f"output directory {str(out)!r} {problem}; choose another --out")
    config_path = out / "config.json"
    if resume:
        if not config_path.is_file():
            raise ConfigError(f"--resume: {str(out)!r} holds no run (no config.json)")
        _check_same_config(config_path, config)
    elif config_path.exists():
        raise ConfigError(f"output directory {str(out)!r} already holds a run; pass --resume to continue it or choose another --out")
    else:
        _check_holds_nothing_else(out)


def run_pipeline(
    config: RunConfig,
    out_dir: str | Path,
    registry: Registry,
    *,
    resume: bool = False,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the whole job for ``config`` into ``out_dir``; returns (and writes) the summary.

    Started by torchrun with several processes, trains SimGAN with DDP on all of them and runs
    everything else on rank 0 (see the module docstring).
    """
    context = dist_utils.setup(config.device)  # None in a plain single-process run
    try:
        return _run_pipeline(config, out_dir, registry, context, resume=resume, progress=progress, say=say)
    finally:
        dist_utils.cleanup(context)


def _run_pipeline(
    config: RunConfig,
    out_dir: str | Path,
    registry: Registry,
    context: dist_utils.DistributedContext | None,
    *,
    resume: bool,
    progress: bool,
    say: Callable[[str], None],
) -> dict[str, Any]:
    start = time.perf_counter()
    main = context is None or context.is_main
    if not main:
        say, progress = (lambda _: None), False
    # Every rank must use rank 0's folder (e.g. a default --out named after the clock).
    out = Path(dist_utils.broadcast_object(str(out_dir)))
    config_path = out / "config.json"
    task: Task = registry.create("task", config.task)
    spec = task.image_spec
    device = context.device if context is not None else resolve_device(config.device)
    check_run_folder(out, config, resume)
    # Rank 0 alone writes: it creates the folder and tells every rank whether it could, so
    # that none is left waiting for it.
    created: list[Path] = []
    refused: str | None = None
    if main:
        try:
            created = create_run_folder(out)
        except ConfigError as exc:
            refused = str(exc)
    refused = dist_utils.broadcast_object(refused)
    if refused:
        raise ConfigError(refused)
    # Every rank has checked the folder before rank 0 writes config.json into it.
    dist_utils.barrier()

    stages = _Stages(say)
    d = config.data
    say(f"task {config.task!r}, profile {config.profile!r}, device {device}, output {out}")

    def side(name: str, n: int, seed: int, generate: Callable[[], LabelledImages]) -> LabelledImages:
        """The task's generator, or the dataset on disk that ``data.<name>`` names."""
        source: DataSource | None = getattr(d, name)
        if source is None:
            return generate()
        return load_side(registry, task, name, source, n, seed, progress=progress, say=say).to(device)

    def make_data() -> tuple[LabelledImages, torch.Tensor, LabelledImages, LabelledImages | None]:
        synthetic = side("synthetic", d.n_synthetic, config.seed + _SEED_SYNTHETIC,
                         lambda: task.synthetic(d.n_synthetic, config.seed + _SEED_SYNTHETIC, device))
        real = side("real", d.n_real, config.seed + _SEED_REAL,
                    lambda: LabelledImages(task.real(d.n_real, config.seed + _SEED_REAL, device))).images
        test = side("test", d.n_test, config.seed + _SEED_TEST,
                    lambda: task.real_labelled(d.n_test, config.seed + _SEED_TEST, device))
        target = side("target_train", d.n_target_train, config.seed + _SEED_TARGET_TRAIN,
                      lambda: task.real_labelled(d.n_target_train, config.seed + _SEED_TARGET_TRAIN, device)) if d.n_target_train else None
        spec.check(synthetic.images, f"task {config.task!r} synthetic()")
        spec.check(real, f"task {config.task!r} real()")
        spec.check(test.images, f"task {config.task!r} real_labelled()")
        if (d.real is None) != (d.test is None):
            on_disk, generated = ("real", "test") if d.real is not None else ("test", "real")
            say(f"note: data.{on_disk} is read from disk but data.{generated} comes from the task's generator: "
                "the refiner adapts to one target domain and the estimators are scored on another")
        return synthetic, real, test, target

    try:
        synthetic, real, test, target = stages.run("simulate", make_data)
    except BaseException:  # Ctrl-C included: a run that never started leaves no folder behind
        _remove_empty(created)
        raise
    # Written once the data is in: a bad data path or format leaves no half-started run behind.
    if main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(config_path, config.model_dump(mode="json"))
    results: dict[str, dict[str, Any]] = {}  # training set -> its first seed's result
    per_seed: dict[str, list[dict[str, float]]] = {}  # training set -> metrics of each seed

    # Labelled sides read from disk; when the task declares no estimator_labels, a label they
    # lack surfaces as a KeyError in the task's code, reported below naming these paths.
    disk_labelled = {s: getattr(d, s).path for s in LABELLED_SIDES if getattr(d, s) is not None}

    def estimator(train_set: str, data: LabelledImages) -> nn.Module:
        """Train (or reload) every seed's estimator on ``train_set``; returns the first seed's."""
        try:
            fits = [_estimator_stage(task, config, registry, out, train_set, data, test, device, progress, resume, k)
                    for k in range(estimator_seed_count(config, train_set))]
        except KeyError as exc:
            if not disk_labelled:
                raise
            have = {"training set": sorted(data.labels), "test set": sorted(test.labels)}
            raise DataError(
                f"task {config.task!r} reads label {exc.args[0]!r}, missing from data on disk "
                f"({', '.join(f'data.{k}.path {v!r}' for k, v in disk_labelled.items())}); labels present: {have}"
            ) from None
        results[train_set] = fits[0][1]
        per_seed[train_set] = [r["metrics"] for _, r in fits]
        return fits[0][0]

    def label_preservation() -> dict[str, float]:
        try:
            return task.label_preservation(synthetic, refined_images)
        except KeyError as exc:
            if d.synthetic is None:
                raise
            say(f"label preservation skipped: task {config.task!r} reads label {exc.args[0]!r}, which "
                f"data.synthetic.path {d.synthetic.path!r} does not have (it has: {', '.join(sorted(synthetic.labels)) or 'none'})")
            return {}

    train_on = config.estimator.train_on
    psi_needs_estimator = config.feature.name == "learned" and config.feature.checkpoint is None
    # With DDP, the synthetic estimator is trained before SimGAN only if psi needs it: the
    # other ranks would otherwise wait for it, idle.
    estimator_first = "synthetic" in train_on and (context is None or psi_needs_estimator)
    synthetic_estimator: nn.Module | None = None
    if estimator_first:
        if main:
            synthetic_estimator = stages.run("estimator:synthetic", lambda: estimator("synthetic", synthetic))
        dist_utils.barrier()
        if not main:  # rank 0 has written it (or, resuming, had it): load it
            torch.manual_seed(config.seed)
            model = to_device(build_estimator(task, config.estimator, registry), device, config.channels_last)
            synthetic_estimator = _load_estimator_weights(model, out / "estimators" / "synthetic.pt", device)

    refiner, discriminator, psi, loss_name, loss = build_simgan(config, registry, task, device, synthetic_estimator)
    trainer = SimGANTrainer(
        config, spec, refiner, discriminator, psi, loss, synthetic.images, real, device, out,
        refiner_spec={"name": config.refiner.name, "options": {"in_channels": spec.channels, **config.refiner.factory_options()}},
        progress=progress, distributed=context is not None,
    )
    outcome = stages.run("simgan", lambda: trainer.train(resume=resume))
    if context is not None:
        dist_utils.barrier()  # rank 0's final checkpoint is written; the others are done
        if not main:
            return {"task": config.task, "rank": context.rank, "world_size": context.world_size,
                    "simgan_final": outcome.last_metrics}

    refined_images = stages.run("refine", lambda: refine_images(trainer.inference_refiner, synthetic.images, seed=config.seed))
    refined = synthetic.with_images(refined_images)
    stages.run(
        "export",
        lambda: write_images_h5(
            out / "refined.h5", refined.to("cpu"),
            {"kind": "refined", "task": config.task, "profile": config.profile, "value_range": list(spec.value_range),
             "refiner_checkpoint": str((out / "checkpoints" / "last.pt").resolve()), "config": config.model_dump(mode="json"), "seed": config.seed},
        ),
    )
    preservation = stages.run("label_preservation", label_preservation)

    if "synthetic" in train_on and not estimator_first:
        stages.run("estimator:synthetic", lambda: estimator("synthetic", synthetic))
    if "refined" in train_on:
        stages.run("estimator:refined", lambda: estimator("refined", refined))
    if "target" in train_on and target is not None:
        stages.run("estimator:target", lambda: estimator("target", target))

    figures = stages.run("figures", lambda: task.save_figures({k: v["metrics"] for k, v in results.items()}, out))
    primary = task.primary_metric
    verdict = (refinement_verdict(*([m[primary.name] for m in per_seed[s]] for s in VERDICT_SETS), primary.lower_is_better)
               if set(VERDICT_SETS) <= set(per_seed) else None)
    # Grid names carry the zero-padded step (samples/step_000400.png), so the largest is the last grid.
    sample_grid = max((p.relative_to(out).as_posix() for p in (out / "samples").glob("step_*.png")), default=None)
    summary = {
        "task": config.task,
        "profile": config.profile,
        "device": str(device),
        "wall_seconds": round(time.perf_counter() - start, 2),
        "stage_seconds": stages.seconds,
        "loss_implementation": loss_name,
        "primary_metric": {"name": primary.name, "lower_is_better": primary.lower_is_better, "unit": primary.unit},
        "estimators": {k: v["metrics"] for k, v in results.items()},
        "estimator_seeds": [config.seed + k for k in range(config.estimator.seeds)],
        "estimators_per_seed": per_seed,
        "refinement_verdict": verdict,
        "sample_grid": sample_grid,
        "full_effect_profile": task.full_effect_profile,
        "label_preservation": preservation,
        "figures": [str(Path(f).relative_to(out)) if Path(f).is_relative_to(out) else str(f) for f in figures],
        "simgan_final": outcome.last_metrics,
        "resumed_from": list(outcome.resumed_from) if outcome.resumed_from else None,
        "data": d.model_dump(),
        "data_counts": {"synthetic": len(synthetic), "real": len(real), "test": len(test), "target_train": len(target) if target is not None else 0},
        "environment": environment_info(device),
    }
    atomic_write_json(out / "summary.json", summary)
    stale = remove_stale_temp_files(out)
    if stale:
        say(f"removed {len(stale)} temporary file(s) left by an interrupted run: {', '.join(p.relative_to(out).as_posix() for p in stale)}")
    say(format_results_table(summary))
    return summary
