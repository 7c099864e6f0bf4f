"""Hook specifications: everything a plugin can contribute to simgan-toolkit.

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

from simgan_toolkit.plugin.markers import hookspec

if TYPE_CHECKING:
    from simgan_toolkit.plugin.registry import Register


@hookspec
def simgan_register_tasks(register: Register) -> None:
    """Register domains (tasks).

    Call ``register.task(name, factory, description=...)`` where ``factory()`` returns a
    :class:`simgan_toolkit.task.Task`. The task name is what ``--task NAME`` selects.
    """


@hookspec
def simgan_register_networks(register: Register) -> None:
    """Register refiner and discriminator architectures.

    Call ``register.refiner(name, factory)`` with ``factory(in_channels=..., **config)`` returning a
    :class:`simgan_toolkit.networks.Refiner`, and ``register.discriminator(name, factory)`` with
    ``factory(in_channels=..., height=..., width=..., **config)`` returning a
    :class:`simgan_toolkit.networks.Discriminator`.
    """


@hookspec
def simgan_register_feature_transforms(register: Register) -> None:
    """Register feature transforms psi used by the self-regularisation loss.

    Call ``register.feature_transform(name, factory)`` with ``factory(in_channels=..., **options)``
    returning a :class:`simgan_toolkit.features.FeatureTransform`.
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
    ``factory(image_spec=..., output_dim=..., **options)`` returning an ``nn.Module`` whose
    ``forward(images)`` gives predictions and whose ``features(images)`` gives a feature map
    (used by the ``learned`` feature transform).
    """


@hookspec
def simgan_register_datasets(register: Register) -> None:
    """Register on-disk dataset formats (UnityEyes, MPIIGaze, NYU Hand, your own).

    Call ``register.dataset(name, loader_class)`` with a subclass of
    :class:`simgan_toolkit.data.loader.DatasetLoader`; ``loader_class(**options)`` builds a
    loader, ``loader_class.detect(root)`` recognises the format for ``--format auto``.
    ``simgan convert`` and the run's ``data.*_path`` settings use registered loaders.
    """
