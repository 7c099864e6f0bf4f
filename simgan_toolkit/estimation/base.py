"""The estimator contract: what every registered downstream estimator provides.

The toolkit trains an estimator on each image set (synthetic, refined, labelled target), scores
it with the task's metrics, and reuses its feature map as the ``learned`` feature transform and
for the benchmarks' realism scores. :class:`Estimator` states everything those callers use, so
a plugin's estimator works everywhere a built-in one does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor, nn


class Estimator(nn.Module, ABC):
    """A downstream estimator: images (N, C, H, W) -> predictions.

    Built by its registered factory as ``factory(image_spec=..., output_dim=..., **options)``.

    Output shape rule: in **eval mode** ``forward`` returns the prediction the task's
    ``estimator_metrics`` scores, with ``output_dim`` along dimension 1 (``(N, output_dim)`` for
    a regressed vector, ``(N, output_dim, h, w)`` for one heatmap per joint). In **training
    mode** it may return more, as long as the task's ``estimator_loss`` understands it: the
    stacked hourglass returns every stack's heatmaps, ``(N, stacks, output_dim, h, w)``, for
    intermediate supervision. Scoring always runs in eval mode
    (:func:`simgan_toolkit.estimation.predict`).

    Subclasses implement :meth:`forward` and :meth:`features`; an estimator working at a fixed
    input size overrides :meth:`resize_input`.
    """

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) images -> predictions (see the output shape rule above)."""

    @abstractmethod
    def features(self, x: Tensor) -> Tensor:
        """(N, C, H, W) images -> a feature map (N, D, ...) with a batch dimension.

        Mandatory: the ``learned`` feature transform uses it as psi, and the benchmarks pool it
        into the embedding of their realism scores.
        """

    def resize_input(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, C, H', W'): the input size ``forward`` works at; ``x`` unchanged here.

        An estimator that resizes every input to a fixed size overrides this with exactly the
        resizing its ``forward`` applies: the training loop then resizes the training set once
        (:func:`~simgan_toolkit.estimation.training.resized_for`) instead of every batch.
        """
        return x


def resizes_input(model: nn.Module) -> bool:
    """Whether ``model`` overrides :meth:`Estimator.resize_input` (a plain module never does)."""
    resize = getattr(model, "resize_input", None)
    return resize is not None and getattr(resize, "__func__", None) is not Estimator.resize_input
