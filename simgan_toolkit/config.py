"""Run configuration: pydantic models, per-task profiles, TOML files and ``--set`` overrides.

Precedence, lowest first: the model defaults below, the task's profile
(``Task.profiles()[profile]``), a TOML/JSON config file, then ``--set a.b=value`` overrides.
Every invalid value becomes one :class:`ConfigError` naming the field.

The defaults belong to no domain: what depends on one (which estimator, how large the images
and networks are) is stated by the task's profiles. ``estimator.name`` has no default at all: a
run whose profile, file and overrides name no estimator stops with a ConfigError naming it,
rather than training some other domain's estimator.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from functools import reduce
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simgan_toolkit.errors import ConfigError, SimganDeprecationWarning

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def _options_shadow_no_field(section: BaseModel) -> BaseModel:
    """``options`` must not repeat a field of its section: which of the two values would win is a guess."""
    shadowed = sorted(set(section.options) & (set(type(section).model_fields) - {"options"}))  # type: ignore[attr-defined]
    if shadowed:
        raise ValueError(f"options.{shadowed[0]} repeats the field {shadowed[0]!r}; set it directly")
    return section


def _factory_options(section: BaseModel) -> dict[str, Any]:
    """A network section's factory keyword arguments: its fields but ``name``, then its ``options``."""
    return {**section.model_dump(exclude={"name", "options"}), **section.options}  # type: ignore[attr-defined]


class RefinerConfig(_Strict):
    """Refiner architecture (registered name plus its options)."""

    name: str = "resnet"
    width: int = Field(64, ge=1)
    blocks: int = Field(4, ge=0)
    kernel_size: int = Field(3, ge=1)
    output: Literal["tanh", "residual"] = "tanh"
    noise_channels: int = Field(0, ge=0)
    #: How convolutions pad the image border (``torch.nn.Conv2d``'s ``padding_mode``). With
    #: ``zeros`` (the usual) the refiner can tell where the border is and paints frames there
    #: that no target image has; ``replicate`` gives it no such cue.
    padding_mode: Literal["zeros", "replicate", "reflect"] = "zeros"
    #: The value a real sensor writes where it has no reading (depth: the far value), or None.
    #: With a value the refiner can drop pixels to exactly it (a dropout head, see
    #: ``ResNetRefiner``), as real sensors do at edges, shadows and dark spots.
    missing_value: float | None = None
    #: A plugin refiner's own settings, passed to its factory with the fields above.
    options: dict[str, Any] = Field(default_factory=dict)

    _no_shadowed_fields = model_validator(mode="after")(_options_shadow_no_field)

    def factory_options(self) -> dict[str, Any]:
        """Keyword arguments of the refiner factory: every field but ``name``, then ``options``."""
        return _factory_options(self)


#: Built-in discriminators that are built from ``discriminator.layers``.
BUILTIN_LAYERED_DISCRIMINATORS = ("local", "global")


class DiscriminatorConfig(_Strict):
    """Discriminator architecture: ``local`` (per patch) or ``global`` (per image)."""

    name: str = "local"
    #: Layer spec (see :mod:`simgan_toolkit.networks.discriminator`). No default: the right
    #: layers depend on the image size, so a task's profiles state them; the built-in
    #: discriminators refuse a run without them (``RunConfig``).
    layers: list[str] | None = None
    width_mult: float = Field(1.0, gt=0)
    norm: Literal["none", "batch", "group"] = "none"
    #: A plugin discriminator's own settings, passed to its factory with the fields above.
    options: dict[str, Any] = Field(default_factory=dict)

    _no_shadowed_fields = model_validator(mode="after")(_options_shadow_no_field)

    def factory_options(self) -> dict[str, Any]:
        """Keyword arguments of the discriminator factory: every field but ``name``, then ``options``."""
        return _factory_options(self)


class FeatureConfig(_Strict):
    """Feature transform psi of the self-regularisation loss."""

    name: str = "identity"
    #: Estimator checkpoint for ``learned``; if unset, the estimator trained on synthetic
    #: images in the same run is used.
    checkpoint: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class OptimizerConfig(_Strict):
    """One optimiser."""

    name: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)


class TrainConfig(_Strict):
    """SimGAN training schedule (Algorithm 1 of the paper plus the two pretraining phases)."""

    batch_size: int = Field(512, ge=2)
    refiner_pretrain_steps: int = Field(1000, ge=0)
    discriminator_pretrain_steps: int = Field(200, ge=0)
    #: Adversarial iterations; each is ``k_g`` refiner steps then ``k_d`` discriminator steps.
    #: At least 1: with none the refiner is only pretrained towards the identity and the run
    #: would report "refined" images that never saw the real ones.
    steps: int = Field(2000, ge=1)
    k_g: int = Field(2, ge=1)
    k_d: int = Field(1, ge=1)
    #: lambda, the weight of the self-regularisation L1 term (mean-normalised, see losses.py).
    lam: float = Field(0.5, ge=0)
    history: bool = True
    history_size: int = Field(12800, ge=1)
    #: Decay of an exponential moving average of the refiner's weights (0 = off). The average,
    #: not the last iterate, draws the sample grids, refines the dataset and is what ``refine``
    #: loads; D still trains against the live refiner. A GAN's last iterate carries whatever
    #: the refiner and D were chasing at that step; the average keeps what persisted.
    refiner_ema: float = Field(0.0, ge=0.0, lt=1.0)
    refiner_optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    discriminator_optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    #: Train R and D on random square crops of this size (None: whole images). R and D are
    #: fully convolutional and the loss is local, so a refiner trained on crops refines whole
    #: images; this cuts the cost of large images (hands: 224x224) on small machines.
    crop_size: int | None = Field(None, ge=8)
    #: Registered loss implementation, or ``auto`` (the best one available on the device).
    loss: str = "auto"
    #: Mixed precision of the forward passes of R, D and psi. ``bf16`` runs them under
    #: ``torch.autocast(dtype=torch.bfloat16)`` (the losses are still computed in float32, and
    #: bfloat16 needs no gradient scaling); weights, optimiser state and the history buffer stay
    #: float32. Faster on GPUs with bf16 tensor cores; results differ from ``none`` by bf16 rounding.
    amp: Literal["none", "bf16"] = "none"
    #: Compile R and D with ``torch.compile`` (checkpoints still hold the plain modules' weights).
    #: The first steps are slow (compilation); later ones faster, mostly on GPUs. Changing it
    #: does not block ``--resume``: it changes how a run executes, not what it computes.
    compile: bool = False
    #: ``torch.compile`` mode when ``compile`` is on.
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = "default"
    #: Every ``log_every`` steps (and at each phase end) the metrics go to metrics.jsonl. The
    #: device is never waited on for them: a record is copied to the host in the background
    #: and written one logging interval later (or at the next checkpoint / the end), and a
    #: NaN loss stops the run at that point at the latest.
    log_every: int = Field(10, ge=1)
    sample_every: int = Field(200, ge=1)
    checkpoint_every: int = Field(200, ge=1)


class DataSource(_Strict):
    """A dataset on disk used instead of the task's generator for one side of a run.

    ``path`` is a dataset folder (or file) in a registered format, or a toolkit HDF5 file
    (``simgan convert`` output, a run's ``refined.h5``). A relative path is made absolute
    against the working directory, so the saved ``config.json`` still finds it after a ``cd``.
    A plain string is shorthand for ``{path = "..."}``.
    """

    path: str
    #: A registered dataset format (``simgan plugins``), ``toolkit-h5``, or ``auto`` to detect it.
    format: str = "auto"
    #: Keyword options of the format's loader (e.g. ``{rgb = true}``).
    options: dict[str, Any] = Field(default_factory=dict)
    #: Skip unreadable files (counted, and summed up in one warning) instead of failing.
    skip_bad: bool = False

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, (str, Path)) else value

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return os.path.abspath(os.path.expanduser(value))


#: Settings renamed in v1, per section: old key -> new key. The old keys keep working until v2,
#: with a :class:`~simgan_toolkit.errors.SimganDeprecationWarning`; saved run configs are
#: renamed silently (:func:`resume_comparable`).
RENAMED_KEYS: dict[str, dict[str, str]] = {"data": {"n_real": "n_target", "real": "target"}}


def _where(source: str | None) -> str:
    return f" ({source})" if source else ""


def _rename_section(values: dict[str, Any], section: str, source: str | None) -> dict[str, Any]:
    """One section's settings with its old keys (:data:`RENAMED_KEYS`) renamed; see :func:`rename_old_keys`."""
    out = dict(values)
    for old, new in RENAMED_KEYS.get(section, {}).items():
        if old not in out:
            continue
        if new in out:
            raise ValueError(f"{section}.{old} and {section}.{new} are both given{_where(source)}: {old} is the old "
                             f"name of {new}; keep only {section}.{new}")
        if source is not None:
            warnings.warn(f"{section}.{old} is deprecated{_where(source)}: it is now {section}.{new} "
                          "(renamed in v1; the old name goes in v2)", SimganDeprecationWarning, stacklevel=2)
        out[new] = out.pop(old)
    return out


def rename_old_keys(settings: dict[str, Any], source: str | None = None) -> dict[str, Any]:
    """``settings`` (nested, in the shape of :class:`RunConfig`) with the keys renamed in v1
    (:data:`RENAMED_KEYS`) under their new names.

    Each old key warns, naming ``source`` (where the settings come from, e.g. a config file)
    when it is not empty; ``None`` renames silently (a run folder's saved config). Raises
    ValueError naming both keys when a setting is given under its old and its new name.
    """
    out = dict(settings)
    for section in RENAMED_KEYS:
        if isinstance(out.get(section), dict):
            out[section] = _rename_section(out[section], section, source)
    return out


class DataConfig(_Strict):
    """How many images each source provides, and optionally where on disk they come from.

    A side left at None uses the task's own generator. With a :class:`DataSource`, the side
    takes at most ``n_*`` images from it (fewer if it holds fewer; the run log says so).
    ``n_real`` and ``real`` are the names of ``n_target`` and ``target`` before v1: they are
    still read, with a warning.
    """

    n_synthetic: int = Field(20000, ge=1)
    #: Unlabelled target-domain images for SimGAN training.
    n_target: int = Field(20000, ge=1)
    n_test: int = Field(2000, ge=1)
    #: Labelled target images for the oracle estimator (0 disables the oracle row).
    n_target_train: int = Field(20000, ge=0)
    #: Labelled simulator images (need the labels the task's estimator reads).
    synthetic: DataSource | None = None
    #: Unlabelled target-domain (real) images: the only target data the refiner sees (labels ignored).
    target: DataSource | None = None
    #: Labelled target images that score the estimators (never shown to the refiner).
    test: DataSource | None = None
    #: Labelled target images for the oracle estimator (needs ``n_target_train`` > 0).
    target_train: DataSource | None = None

    @model_validator(mode="before")
    @classmethod
    def _old_key_names(cls, values: Any) -> Any:
        return _rename_section(values, "data", source="") if isinstance(values, dict) else values

    @model_validator(mode="after")
    def _oracle_source_needs_images(self) -> DataConfig:
        if self.target_train is not None and self.n_target_train == 0:
            raise ValueError("data.target_train is set but data.n_target_train = 0 disables the oracle; set n_target_train > 0")
        return self


class EstimatorConfig(_Strict):
    """The downstream estimator and its training budget (identical for every training set)."""

    #: A registered estimator (``simgan plugins``). No default: the task's profiles name it, and
    #: a :class:`RunConfig` without one is invalid (this section alone may leave it unset).
    name: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    steps: int = Field(3000, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    train_on: list[Literal["synthetic", "refined", "target"]] = Field(
        default_factory=lambda: ["synthetic", "refined", "target"]
    )
    #: Estimator seeds (``seed``, ``seed + 1``, ...) for the synthetic and refined training
    #: sets. Their spread (or, if larger, the test set's paired 95 % half-width) is the run's
    #: noise: the verdict says refinement helped only if it beats that
    #: (simgan_toolkit.report.refinement_verdict). 1 turns the verdict off.
    seeds: int = Field(2, ge=1)


class RunConfig(_Strict):
    """Everything one run needs. Saved as ``config.json`` in every run folder."""

    task: str
    profile: str = "default"
    seed: int = 0
    device: str = "auto"
    #: Store convolution weights channels-last (NHWC): 20-35% faster on CPUs with oneDNN and
    #: what tensor cores want on GPUs. Results are the same up to float rounding.
    channels_last: bool = True
    refiner: RefinerConfig = Field(default_factory=RefinerConfig)
    discriminator: DiscriminatorConfig = Field(default_factory=DiscriminatorConfig)
    feature: FeatureConfig = Field(default_factory=FeatureConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    estimator: EstimatorConfig = Field(default_factory=EstimatorConfig)

    @model_validator(mode="after")
    def _check_batches(self) -> RunConfig:
        half = self.train.batch_size - self.train.batch_size // 2
        if self.train.history and self.train.history_size < half:
            raise ValueError(
                f"train.history_size ({self.train.history_size}) must hold at least half a batch "
                f"(ceil(train.batch_size / 2) = {half})"
            )
        return self

    @model_validator(mode="after")
    def _estimator_named(self) -> RunConfig:
        if self.estimator.name is None:
            raise ValueError(
                f"estimator.name is not set: task {self.task!r}, profile {self.profile!r} names no estimator; "
                "set estimator.name to a registered one (see `simgan plugins`)"
            )
        return self

    @model_validator(mode="after")
    def _discriminator_layered(self) -> RunConfig:
        # Plugin discriminators may build their own layers; the built-in ones need a spec.
        if self.discriminator.name in BUILTIN_LAYERED_DISCRIMINATORS and not self.discriminator.layers:
            raise ValueError(
                f"discriminator.layers is not set: task {self.task!r}, profile {self.profile!r} gives the "
                f"{self.discriminator.name!r} discriminator no layers; set discriminator.layers "
                '(e.g. ["conv3s2-32", "conv1-2"])'
            )
        return self


#: Train settings that change how a run executes, not what it computes: a resumed run may differ in them.
EXECUTION_ONLY_TRAIN_KEYS = ("compile", "compile_mode")


def resume_comparable(dumped: dict[str, Any]) -> dict[str, Any]:
    """A dumped :class:`RunConfig` (``model_dump(mode="json")``) as compared when resuming.

    Train, estimator and network settings missing from it (saved by an older version) take
    their defaults, keys renamed since (:data:`RENAMED_KEYS`) take their new names, and
    :data:`EXECUTION_ONLY_TRAIN_KEYS` are dropped, so that none of these blocks a resume.
    """
    out = rename_old_keys(dumped)
    for key, section in (("train", TrainConfig), ("estimator", EstimatorConfig), ("refiner", RefinerConfig),
                         ("discriminator", DiscriminatorConfig)):
        if isinstance(out.get(key), dict):
            out[key] = {**section().model_dump(mode="json"), **out[key]}
    if isinstance(out.get("train"), dict):
        out["train"] = {k: v for k, v in out["train"].items() if k not in EXECUTION_ONLY_TRAIN_KEYS}
    return out


#: At most this many differing settings are listed in one message (a changed profile differs in dozens).
MAX_LISTED_DIFFERENCES = 8


def _flatten(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"steps": 4}}`` -> ``{"train.steps": 4}`` (lists stay values, empty tables vanish,
    so that ``options = {}`` against ``options = {a = 1}`` reads ``options.a: saved unset, now 1``)."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The settings in which two :func:`resume_comparable` dicts differ, one entry each:
    ``["train.steps: saved 400, now 800", ...]``; top-level ones (``profile``, ``seed``) first,
    as they explain the rest, then by name."""
    old, new = _flatten(saved), _flatten(current)
    missing = object()

    def show(value: Any) -> str:
        return "unset" if value is missing else json.dumps(value)

    return [
        f"{key}: saved {show(old.get(key, missing))}, now {show(new.get(key, missing))}"
        for key in sorted(set(old) | set(new), key=lambda k: ("." in k, k))
        if old.get(key, missing) != new.get(key, missing)
    ]


def describe_differences(differences: list[str]) -> str:
    """``differences`` joined by ``"; "``, the first :data:`MAX_LISTED_DIFFERENCES` of them and a count of the rest."""
    shown = "; ".join(differences[:MAX_LISTED_DIFFERENCES])
    rest = len(differences) - MAX_LISTED_DIFFERENCES
    return f"{shown}; and {rest} more" if rest > 0 else shown


def check_resume_compatible(saved: dict[str, Any], current: RunConfig, source: str) -> None:
    """The one resume check: a run resumed from ``source`` (a run's config.json or a trainer
    checkpoint) must use the settings ``saved`` there; a resumed run would otherwise silently mix
    two experiments. The device and execution-only train settings (``train.compile``, ...) may
    change. Raises ConfigError naming ``source`` and each differing field."""
    old, new = resume_comparable(saved), resume_comparable(current.model_dump(mode="json"))
    old.pop("device", None)
    new.pop("device", None)
    differences = config_differences(old, new)
    if differences:
        raise ConfigError(
            f"cannot resume from {source!r}: its settings differ from this run's: {describe_differences(differences)}; "
            "use the same settings or a new --out directory"
        )


# --------------------------------------------------------------------------------------
def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base`` (dicts merge, other values replace)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_value(raw: str) -> Any:
    """A command-line value read as TOML (``2``, ``true``, ``[1, 2]``, ``{a = 1}``), else the plain string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def parse_override(item: str) -> dict[str, Any]:
    """``"train.k_g=2"`` -> ``{"train": {"k_g": 2}}``. Values are read as TOML, else as strings."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.k_g=2")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {item!r}: empty key")
    value = parse_value(raw)
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (or JSON, e.g. a saved ``config.json``) config file into a dict."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    try:
        if p.suffix == ".json":
            data = json.loads(p.read_text(encoding="utf-8"))
        else:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {str(p)!r} is not valid {p.suffix.lstrip('.').upper() or 'TOML'}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(p)!r} cannot be read: {exc.strerror or exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a table of settings, got a {type(data).__name__}")
    return data


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem: ``field.path: message (got value)``."""
    lines = []
    for err in exc.errors():
        got = f" (got {err['input']!r})" if "input" in err and not isinstance(err["input"], dict) else ""
        if not err["loc"]:
            # A check across sections: its message names the fields itself.
            lines.append(err["msg"].removeprefix("Value error, ") + got)
            continue
        loc = ".".join(str(x) for x in err["loc"])
        lines.append(f"{loc}: {err['msg']}{got}")
    return "invalid configuration: " + "; ".join(lines)


def build_config(
    task: str,
    profile: str,
    profiles: dict[str, dict[str, Any]],
    *,
    config_file: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> RunConfig:
    """Resolve a :class:`RunConfig` from a task's profiles, a file and overrides.

    Raises:
        ConfigError: unknown profile, unreadable file, or any invalid value (naming the field).
    """
    if profile not in profiles and profile != "default":
        raise ConfigError(f"profile {profile!r} is not defined for task {task!r}; known: {', '.join(sorted(profiles))}")
    # Old key names are renamed layer by layer: an old name in one layer overrides the new
    # name in a lower one, as the new name would.
    try:
        merged: dict[str, Any] = rename_old_keys(profiles.get(profile, {}), f"task {task!r}, profile {profile!r}")
        if config_file is not None:
            merged = deep_merge(merged, rename_old_keys(load_config_file(config_file), f"config file {str(config_file)!r}"))
        parsed = [parse_override(item) for item in overrides]
        rename_old_keys(reduce(deep_merge, parsed, {}))  # an old and a new name, each in its own --set
        for item, override in zip(overrides, parsed):
            merged = deep_merge(merged, rename_old_keys(override, f"--set {item}"))
    except ValueError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from None
    merged["task"] = task
    merged["profile"] = profile
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
