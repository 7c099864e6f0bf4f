"""Hook specifications: everything a plugin can contribute to simgan-toolkit.

This module is the single source of the hooks: the plugin manager calls every hook spec defined
here (:func:`hook_names`), and a meta-test checks that each one is documented in
docs/writing-a-plugin.md with the keyword arguments of :data:`FACTORY_KEYWORDS` and is tested.

Each hook receives a :class:`~simgan_toolkit.plugin.registry.Register` bound to the calling
plugin, and adds entries to it instead of returning lists (the tox pattern): the host then
validates names, detects conflicts and remembers which plugin contributed what in one place.

Every hook is called once, when the registry is first needed. Entry-point modules must import
cheaply: register *factories* and import torch-heavy code inside them.

A minimal plugin module::

    from simgan_toolkit.plugin import hookimpl

    @hookimpl
    def simgan_register_tasks(register):
        register.task("my_domain", lambda: MyTask(), description="my simulator")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simgan_toolkit.plugin.markers import PROJECT_NAME, hookspec

if TYPE_CHECKING:
    from simgan_toolkit.plugin.registry import Register

#: The keyword arguments the toolkit itself passes to each kind's factory, exactly as the call
#: sites pass them. Every factory also receives its config section's ``options`` mapping as
#: further keyword arguments (for ``refiner`` and ``discriminator`` the section's other fields
#: too; for ``estimator`` the task's ``estimator_options()`` first). ``task`` and ``loss``
#: factories take no arguments; ``dataset`` registers a loader class built with its options.
FACTORY_KEYWORDS: dict[str, tuple[str, ...]] = {
    "task": (),
    "refiner": ("in_channels",),
    "discriminator": ("in_channels", "image_height", "image_width"),
    "feature_transform": ("checkpoint", "registry"),
    "loss": (),
    "estimator": ("image_spec", "output_dim"),
    "dataset": (),
}


@hookspec
def simgan_register_tasks(register: Register) -> None:
    """Register domains (tasks).

    Call ``register.task(name, factory, description=...)`` where ``factory()`` returns a
    :class:`simgan_toolkit.task.Task`. The task name is what ``--task NAME`` selects.
    """


@hookspec
def simgan_register_networks(register: Register) -> None:
    """Register refiner and discriminator architectures.

    Call ``register.refiner(name, factory)`` with ``factory(in_channels=..., **options)``
    returning a :class:`simgan_toolkit.networks.Refiner`, and ``register.discriminator(name,
    factory)`` with ``factory(in_channels=..., image_height=..., image_width=..., **options)``
    returning a :class:`simgan_toolkit.networks.Discriminator`. ``options`` are the fields of
    the ``[refiner]`` / ``[discriminator]`` section other than ``name``, with the section's
    ``options`` table merged in (a plugin's own settings). ``image_height``/``image_width`` are
    the size the discriminator sees: ``train.crop_size`` when crop training, else the task's.
    """


@hookspec
def simgan_register_feature_transforms(register: Register) -> None:
    """Register feature transforms psi used by the self-regularisation loss.

    Call ``register.feature_transform(name, factory)`` with
    ``factory(checkpoint=..., registry=..., **options)`` returning a
    :class:`simgan_toolkit.features.FeatureTransform`: ``checkpoint`` is ``feature.checkpoint``
    (a path or None), ``registry`` the :class:`~simgan_toolkit.plugin.Registry` (to build a
    registered estimator from a checkpoint), ``options`` the ``feature.options`` table. No
    channel count is passed: a transform must work for the images it is given, (N, C, H, W).
    """


@hookspec
def simgan_register_losses(register: Register) -> None:
    """Register implementations of the SimGAN losses.

    Call ``register.loss(name, factory, priority=..., available=...)``; ``factory()`` returns a
    :class:`simgan_toolkit.losses.SimGANLoss`. ``available(device) -> bool`` says whether it
    runs on a device. With ``loss = "auto"`` the available entry of highest priority is used,
    which lets an accelerated kernel replace the pure-PyTorch reference where it can run.
    """


@hookspec
def simgan_register_estimators(register: Register) -> None:
    """Register downstream estimators (the networks trained on synthetic or refined images).

    Call ``register.estimator(name, factory)`` with
    ``factory(image_spec=..., output_dim=..., **options)`` returning a
    :class:`simgan_toolkit.estimation.Estimator`; ``options`` are the task's
    ``estimator_options()`` overridden by the ``estimator.options`` table.
    """


@hookspec
def simgan_register_datasets(register: Register) -> None:
    """Register on-disk dataset formats (UnityEyes, MPIIGaze, NYU Hand, your own).

    Call ``register.dataset(name, loader_class)`` with a subclass of
    :class:`simgan_toolkit.data.loader.DatasetLoader`; ``loader_class(**options)`` builds a
    loader, ``loader_class.detect(root)`` recognises the format for ``--format auto``.
    ``simgan convert`` and the run's ``data.*_path`` settings use registered loaders.
    """


def hook_names() -> tuple[str, ...]:
    """The names of the hook specs above, in definition order (the order the manager calls them).

    Derived from the module, not listed by hand, so that a new hook spec is always called.
    """
    marker = f"{PROJECT_NAME}_spec"  # the attribute pluggy's HookspecMarker sets
    return tuple(name for name, obj in globals().items() if callable(obj) and hasattr(obj, marker))
