"""The Task interface: everything a domain plugin supplies.

A task is one domain (eye gaze, hand depth, ...). The engine never looks inside images or
labels; it asks the task for data, for the estimator's loss and metrics, and for the
label-preservation check. Write a new domain by subclassing :class:`Task` and registering a
factory with the ``simgan_register_tasks`` hook (see ``docs/writing-a-plugin.md``).

To change one part of an existing task (another target camera, another simulator, other
settings), derive from it instead: ``base.derive(name=..., target=...)`` returns a
:class:`DerivedTask` that hands every other member to ``base``.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from simgan_toolkit.config import deep_merge
from simgan_toolkit.errors import DataError, SimganDeprecationWarning


@dataclass(frozen=True)
class ImageSpec:
    """Shape and value range of a task's images, layout (N, C, H, W)."""

    channels: int
    height: int
    width: int
    value_range: tuple[float, float] = (-1.0, 1.0)

    def check(self, images: Tensor, what: str) -> None:
        """Raise :class:`DataError` naming ``what`` unless ``images`` is (N, C, H, W) of this spec."""
        expected = (self.channels, self.height, self.width)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise DataError(
                f"{what}: expected images of shape (N, {self.channels}, {self.height}, {self.width}), "
                f"got {tuple(images.shape)}"
            )
        if not images.is_floating_point():
            raise DataError(f"{what}: expected floating-point images, got {images.dtype}")


@dataclass
class LabelledImages:
    """Images with per-image labels.

    Attributes:
        images: (N, C, H, W) float tensor in the task's value range.
        labels: name -> (N, ...) tensor; the task decides the names.
    """

    images: Tensor
    labels: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        for name, value in self.labels.items():
            if value.shape[0] != n:
                raise DataError(f"label {name!r} has {value.shape[0]} rows but there are {n} images")

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, index: Tensor | slice) -> LabelledImages:
        """Rows ``index`` of images and labels."""
        return LabelledImages(self.images[index], {k: v[index] for k, v in self.labels.items()})

    def to(self, device: torch.device | str) -> LabelledImages:
        """Copy to ``device``."""
        return LabelledImages(self.images.to(device), {k: v.to(device) for k, v in self.labels.items()})

    def with_images(self, images: Tensor) -> LabelledImages:
        """Same labels, other images (e.g. the refined versions of these)."""
        return LabelledImages(images, self.labels)


@dataclass(frozen=True)
class MetricSpec:
    """The metric a results table sorts by. ``lower_is_better`` decides what 'better' means."""

    name: str
    lower_is_better: bool
    unit: str = ""


class Task(ABC):
    """A domain: its data sources, default settings, estimator loss/metrics and label check.

    Data contract: every source returns float images of :attr:`image_spec` in its value range.
    ``target`` images (the target domain: the real, or real-playing, camera) are unlabelled
    and are the only target data the refiner ever sees; ``target_labelled`` exists to score
    estimators (and to train the oracle baseline) and must never be given to the refiner.

    Renamed in v1: ``real`` -> ``target``, ``real_labelled`` -> ``target_labelled``. A subclass
    that still defines only the old names keeps working (they serve the new ones, with one
    :class:`~simgan_toolkit.errors.SimganDeprecationWarning` per class), and ``real()`` /
    ``real_labelled()`` stay callable on every task, with a warning; both go in v2.
    """

    #: Name used by ``--task`` (set by subclasses).
    name: str = ""
    #: The profile in which this task shows the full effect of refinement, when ``default`` is
    #: too short to (e.g. ``"paper"``). After a ``--profile default`` run the results say so.
    #: None (the default): nothing is said.
    full_effect_profile: str | None = None
    #: Version of the task's data sources. A run folder records it (``task.json``) and
    #: ``--resume`` refuses a folder made with another one: its refiner and estimators were
    #: trained on images the sources no longer produce. Change it when the simulator or target
    #: generator draws other images for the same seed. "" (the default): not versioned.
    data_version: str = ""

    @property
    @abstractmethod
    def image_spec(self) -> ImageSpec:
        """Shape and value range of every image this task produces."""

    @abstractmethod
    def synthetic(self, n: int, seed: int, device: torch.device) -> LabelledImages:
        """``n`` labelled simulator images, deterministic in ``seed``."""

    @abstractmethod
    def target(self, n: int, seed: int, device: torch.device) -> Tensor:
        """``n`` unlabelled target-domain (real) images, (n, C, H, W), deterministic in ``seed``."""

    @abstractmethod
    def target_labelled(self, n: int, seed: int, device: torch.device) -> LabelledImages:
        """``n`` labelled target-domain images, for scoring estimators only (never for the refiner)."""

    # --- the names before v1 --------------------------------------------------------------
    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass written against the old names (``real``/``real_labelled`` defined, the new
        ones not) has them serve ``target``/``target_labelled`` too, with one warning per class.
        Runs before ABCMeta counts the abstract methods, so such a class instantiates."""
        super().__init_subclass__(**kwargs)
        aliased = [(old, new) for old, new in RENAMED_METHODS.items() if old in cls.__dict__ and new not in cls.__dict__]
        for old, new in aliased:
            setattr(cls, new, cls.__dict__[old])
        if aliased:
            warnings.warn(
                f"task class {cls.__module__}.{cls.__qualname__} defines "
                f"{' and '.join(f'{old}()' for old, _ in aliased)}, renamed "
                f"{' and '.join(f'{new}()' for _, new in aliased)} in v1: rename them (the old names stop working in v2)",
                SimganDeprecationWarning, stacklevel=3,  # the class statement (this, ABCMeta.__new__, it)
            )

    def real(self, n: int, seed: int, device: torch.device) -> Tensor:
        """Deprecated alias of :meth:`target` (goes in v2)."""
        _warn_renamed("real", "target")
        return self.target(n, seed, device)

    def real_labelled(self, n: int, seed: int, device: torch.device) -> LabelledImages:
        """Deprecated alias of :meth:`target_labelled` (goes in v2)."""
        _warn_renamed("real_labelled", "target_labelled")
        return self.target_labelled(n, seed, device)

    def profiles(self) -> dict[str, dict[str, Any]]:
        """Default settings per profile: ``{"default": {...}, "smoke": {...}, "paper": {...}}``.

        Each value is a nested dict in the shape of :class:`simgan_toolkit.config.RunConfig`
        that overrides its defaults. A profile missing here falls back to the plain defaults.
        """
        return {}

    # --- downstream estimator -------------------------------------------------------------
    @property
    @abstractmethod
    def estimator_output_dim(self) -> int:
        """Number of outputs the estimator must produce (passed to its factory)."""

    @property
    def estimator_labels(self) -> dict[str, tuple[int, ...]] | None:
        """Labels the estimator's loss, metrics and augmentation read: name -> per-image shape.

        Labelled data from disk (``data.synthetic``, ``data.test``, ``data.target_train``) is
        checked against this before anything is trained, e.g. ``{"gaze": (3,)}``. None (the
        default) skips that check; a missing label is then reported when it is first read.
        """
        return None

    def estimator_options(self) -> dict[str, Any]:
        """Extra keyword arguments for the estimator factory (e.g. number of joints)."""
        return {}

    @abstractmethod
    def estimator_loss(self, prediction: Tensor, labels: dict[str, Tensor]) -> Tensor:
        """Scalar training loss of the estimator's ``prediction`` for a batch with ``labels``."""

    @abstractmethod
    def estimator_metrics(self, prediction: Tensor, labels: dict[str, Tensor]) -> dict[str, float]:
        """Metrics over a whole evaluation set (prediction for every image, concatenated)."""

    @property
    @abstractmethod
    def primary_metric(self) -> MetricSpec:
        """The metric the results table leads with."""

    def primary_metric_per_image(self, prediction: Tensor, labels: dict[str, Tensor]) -> Tensor | None:
        """(N,) the primary metric of each evaluation image, whose mean is the primary metric of
        :meth:`estimator_metrics` (each image's angular error, each image's % of joints within
        5 px, ...). The run's verdict uses it to measure the test set's share of the noise (a
        paired comparison of the synthetic and refined estimators over the same test images).

        None (the default): the primary metric is not a mean over images, or the task does not
        say; the verdict's noise is then the estimator seeds' spread alone.
        """
        return None

    def augment(self, images: Tensor, labels: dict[str, Tensor], generator: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
        """Training-time augmentation for the estimator; must move labels with the image.

        ``images`` may be smaller than :attr:`image_spec` says: an estimator with a
        ``resize_input`` method gets its training set resized to its input size once, before
        training (:func:`simgan_toolkit.estimation.training.resized_for`); labels keep the
        task's units (e.g. pixels of the full-size image). The default is no augmentation.
        """
        return images, labels

    def save_figures(self, metrics_by_set: dict[str, dict[str, float]], out_dir: Path) -> list[Path]:
        """Optional plots of the estimator results (e.g. a PCK curve), written into ``out_dir``.

        ``metrics_by_set`` maps a training set ("synthetic", "refined", ...) to the metrics of
        :meth:`estimator_metrics`. Returns the files written; the default writes none.
        """
        return []

    # --- label preservation ---------------------------------------------------------------
    @abstractmethod
    def label_preservation(self, synthetic: LabelledImages, refined: Tensor) -> dict[str, float]:
        """How far refinement moved what the labels describe (e.g. pupil-centre shift in px)."""

    # --- composition ----------------------------------------------------------------------
    def derive(
        self,
        *,
        name: str,
        target: ImageSource | None = None,
        synthetic: ImageSource | None = None,
        settings: dict[str, Any] | None = None,
    ) -> DerivedTask:
        """This task under another ``name`` with some parts replaced (see :class:`DerivedTask`)."""
        return DerivedTask(self, name=name, target=target, synthetic=synthetic, settings=settings)


#: Task methods renamed in v1, old name -> new name (see :meth:`Task.__init_subclass__`).
RENAMED_METHODS = {"real": "target", "real_labelled": "target_labelled"}


def _warn_renamed(old: str, new: str) -> None:
    warnings.warn(f"Task.{old}() is deprecated: call {new}() (renamed in v1; {old}() goes in v2)",
                  SimganDeprecationWarning, stacklevel=3)


#: A source of labelled images: ``(n, generator, device) -> LabelledImages`` of ``n`` images
#: (N, C, H, W), drawn from ``generator`` alone (on ``device``), so the same generator state
#: gives the same images.
ImageSource = Callable[[int, torch.Generator, torch.device], LabelledImages]


def seeded_generator(seed: int, device: torch.device) -> torch.Generator:
    """The generator a task draws one data set from: a fresh one on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(seed)


class DerivedTask(Task):
    """A task built on another one (``base``), with some parts replaced.

    Every member of :class:`Task` is handed to ``base`` except the replaced ones, so a member
    the base adds later (augmentation, figures, ...) is never lost. Attributes that are not
    part of :class:`Task` (e.g. a task's own helpers) are read from ``base`` too.

    Args:
        base: the task to build on, e.g. ``get_registry().create("task", "hand_depth")``.
        name: the new task's ``--task`` name.
        target: the target ("real") camera, an :data:`ImageSource`; it serves both
            :meth:`target` (its labels dropped) and :meth:`target_labelled`. Its images must match
            the base's :attr:`image_spec` and carry the labels of :attr:`estimator_labels`.
        synthetic: the simulator, an :data:`ImageSource`.
        settings: nested settings deep-merged into every one of the base's profiles (e.g.
            ``{"estimator": {"name": "my_net", "options": {...}}}`` to change the estimator).

    Each data set is drawn from :func:`seeded_generator` ``(seed, device)``. To change a
    member that is not a data source or a setting (the loss, the label check), subclass this
    class and override it.
    """

    def __init__(
        self,
        base: Task,
        *,
        name: str,
        target: ImageSource | None = None,
        synthetic: ImageSource | None = None,
        settings: dict[str, Any] | None = None,
    ) -> None:
        if not name:
            raise ValueError("a derived task needs a name")
        self.base = base
        self.name = name
        self.full_effect_profile = base.full_effect_profile
        self.data_version = base.data_version
        self._target = target
        self._synthetic = synthetic
        self._settings = settings or {}

    def __getattr__(self, attribute: str) -> Any:
        # Only called for attributes not found on self: the base's own extras.
        if attribute.startswith("__") or attribute == "base":
            raise AttributeError(attribute)
        return getattr(self.base, attribute)

    @property
    def image_spec(self) -> ImageSpec:
        return self.base.image_spec

    def synthetic(self, n: int, seed: int, device: torch.device) -> LabelledImages:
        if self._synthetic is None:
            return self.base.synthetic(n, seed, device)
        return self._synthetic(n, seeded_generator(seed, device), device)

    def target(self, n: int, seed: int, device: torch.device) -> Tensor:
        if self._target is None:
            return self.base.target(n, seed, device)
        return self._target(n, seeded_generator(seed, device), device).images

    def target_labelled(self, n: int, seed: int, device: torch.device) -> LabelledImages:
        if self._target is None:
            return self.base.target_labelled(n, seed, device)
        return self._target(n, seeded_generator(seed, device), device)

    def profiles(self) -> dict[str, dict[str, Any]]:
        profiles = self.base.profiles()
        return {name: deep_merge(values, self._settings) for name, values in profiles.items()} if self._settings else profiles

    @property
    def estimator_output_dim(self) -> int:
        return self.base.estimator_output_dim

    @property
    def estimator_labels(self) -> dict[str, tuple[int, ...]] | None:
        return self.base.estimator_labels

    def estimator_options(self) -> dict[str, Any]:
        return self.base.estimator_options()

    def estimator_loss(self, prediction: Tensor, labels: dict[str, Tensor]) -> Tensor:
        return self.base.estimator_loss(prediction, labels)

    def estimator_metrics(self, prediction: Tensor, labels: dict[str, Tensor]) -> dict[str, float]:
        return self.base.estimator_metrics(prediction, labels)

    @property
    def primary_metric(self) -> MetricSpec:
        return self.base.primary_metric

    def primary_metric_per_image(self, prediction: Tensor, labels: dict[str, Tensor]) -> Tensor | None:
        return self.base.primary_metric_per_image(prediction, labels)

    def augment(self, images: Tensor, labels: dict[str, Tensor], generator: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
        return self.base.augment(images, labels, generator)

    def save_figures(self, metrics_by_set: dict[str, dict[str, float]], out_dir: Path) -> list[Path]:
        return self.base.save_figures(metrics_by_set, out_dir)

    def label_preservation(self, synthetic: LabelledImages, refined: Tensor) -> dict[str, float]:
        return self.base.label_preservation(synthetic, refined)
