"""Training and scoring the downstream estimator: the measure of whether refinement pays.

Every training set (synthetic, refined, labelled target) gets the same network, optimiser,
schedule and number of steps, so the rows of a results table differ only in their images.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from simgan_toolkit.config import EstimatorConfig
from simgan_toolkit.errors import TrainingDivergedError
from simgan_toolkit.estimation.base import resizes_input
from simgan_toolkit.io import atomic_torch_save
from simgan_toolkit.task import LabelledImages, Task
from simgan_toolkit.training.optim import fused_option

#: A label-free image transform applied to every training batch: ``(images, generator) -> images``
#: (the benchmarks' noise and photometric baselines).
ImageTransform = Callable[[Tensor, torch.Generator], Tensor]


def build_estimator(task: Task, cfg: EstimatorConfig, registry: Any) -> nn.Module:
    """The configured estimator for ``task`` (from the plugin registry)."""
    return registry.create("estimator", cfg.name, **estimator_options(task, cfg))


def estimator_options(task: Task, cfg: EstimatorConfig) -> dict[str, Any]:
    """Keyword arguments of the estimator factory: image spec, output size, task and user options."""
    return {"image_spec": task.image_spec, "output_dim": task.estimator_output_dim, **task.estimator_options(), **cfg.options}


def train_estimator(
    task: Task,
    model: nn.Module,
    train: LabelledImages,
    cfg: EstimatorConfig,
    seed: int,
    *,
    progress: bool = True,
    desc: str = "estimator",
    image_transform: ImageTransform | None = None,
) -> dict[str, float]:
    """Train ``model`` in place on ``train`` (already on the model's device) for ``cfg.steps``.

    Adam with cosine learning-rate decay; batches drawn with replacement from a generator seeded
    by ``seed``; the task's ``augment`` is applied to every batch, then ``image_transform``
    (N, C, H, W) -> (N, C, H, W) if given: a label-free image change such as the Gaussian-noise
    or photometric baselines of the benchmark suite.

    Returns:
        ``{"final_loss": ..., "seconds": ...}``.
    """
    device = train.images.device
    train = resized_for(model, train)
    generator = torch.Generator().manual_seed(seed)
    aug_generator = torch.Generator(device=device).manual_seed(seed + 1)
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused_option(params))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps)
    model.train()
    start = time.perf_counter()
    loss = torch.zeros(())
    bar = tqdm(range(cfg.steps), desc=desc, disable=not progress, dynamic_ncols=True, leave=False)
    for step in bar:
        idx = torch.randint(len(train), (cfg.batch_size,), generator=generator).to(device)
        batch = train.subset(idx)
        images, labels = task.augment(batch.images, batch.labels, aug_generator)
        if image_transform is not None:
            images = image_transform(images, aug_generator)
        loss = task.estimator_loss(model(images), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == cfg.steps - 1:
            value = float(loss.detach())
            if not torch.isfinite(loss):
                raise TrainingDivergedError(f"{desc}: loss became {value} at step {step}; lower estimator.lr")
            bar.set_postfix(loss=f"{value:.4f}", refresh=False)
    bar.close()
    return {"final_loss": float(loss.detach()), "seconds": time.perf_counter() - start}


@torch.no_grad()
def resized_for(model: nn.Module, data: LabelledImages, batch_size: int = 512) -> LabelledImages:
    """``data`` with its images passed once through ``model.resize_input`` if the model overrides it.

    An estimator that resizes its input to a fixed size (the heatmap estimators do) exposes
    ``resize_input``; resizing the training set once instead of every batch makes each step
    cheaper (on 224x224 depth crops the per-batch resize and augmentation cost more than the
    network). The task's ``augment`` then sees images at the estimator's input size with labels
    unchanged. Evaluation needs nothing of this: the model resizes test images itself, the same way.
    """
    if not resizes_input(model):  # the identity: copying the set through it would only cost memory
        return data
    images = torch.cat([model.resize_input(data.images[i : i + batch_size]) for i in range(0, len(data), batch_size)])
    return data.with_images(images.contiguous())


@torch.no_grad()
def predict(model: nn.Module, images: Tensor, batch_size: int = 512) -> Tensor:
    """Predictions for (N, C, H, W) images, in eval mode, concatenated over batches."""
    model.eval()
    return torch.cat([model(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])


def evaluate_estimator(task: Task, model: nn.Module, test: LabelledImages, batch_size: int = 512) -> dict[str, float]:
    """The task's metrics of ``model`` on ``test``."""
    return task.estimator_metrics(predict(model, test.images, batch_size), test.labels)


def save_estimator(model: nn.Module, name: str, options: dict[str, Any], path: str | Path) -> None:
    """Checkpoint an estimator so the ``learned`` feature transform can load it."""
    # Through atomic_torch_save: on a full disk torch.save reports only "unexpected pos".
    atomic_torch_save({"format": "simgan-toolkit/estimator-1", "estimator": name, "options": options, "state_dict": model.state_dict()}, path)
