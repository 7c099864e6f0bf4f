"""The history buffer of refined images (Shrivastava et al., Sec. 2.3).

The discriminator should not forget the artefacts the refiner produced earlier, or the
refiner can reintroduce them. Each discriminator mini-batch of refined images is therefore
half fresh from the current refiner and half drawn from a buffer of past refined images;
after each step, b/2 random buffer slots are overwritten with fresh refined images.
(Two widely forked ports discarded the result of ``np.append``, so their buffer stayed empty.)
"""

from __future__ import annotations

import torch
from torch import Tensor


def to_device_async(tensor: Tensor, device: torch.device) -> Tensor:
    """A CPU tensor (e.g. random indices) moved to ``device`` without making the host wait.

    A plain ``.to("cuda")`` of pageable memory waits until the GPU has finished everything
    queued before it; from pinned memory with ``non_blocking=True`` it is queued like a kernel
    (PyTorch's pinned-memory cache keeps the block alive until the copy is done).
    """
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


class HistoryBuffer:
    """Fixed-capacity store of past refined images on the training device.

    Args:
        capacity: B, the number of images kept.
        generator: drives slot and sample choice; saving its state makes resume exact.
    """

    def __init__(self, capacity: int, generator: torch.Generator | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"history buffer capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.generator = generator
        self._images: Tensor | None = None
        self._filled = 0

    def __len__(self) -> int:
        return self._filled

    @property
    def full(self) -> bool:
        return self._filled == self.capacity

    def push(self, images: Tensor) -> None:
        """Store ``images`` (n, C, H, W), detached.

        Empty slots are filled first; once full, n distinct random slots are replaced.
        """
        images = images.detach()
        n = images.shape[0]
        if n == 0:
            return
        if self._images is None:
            self._images = torch.empty((self.capacity, *images.shape[1:]), dtype=images.dtype, device=images.device)
        elif images.shape[1:] != self._images.shape[1:]:
            raise ValueError(f"history buffer holds images of shape {tuple(self._images.shape[1:])}, got {tuple(images.shape[1:])}")
        free = min(self.capacity - self._filled, n)
        if free:
            self._images[self._filled : self._filled + free] = images[:free]
            self._filled += free
        rest = images[free:]
        if rest.shape[0]:
            slots = torch.randperm(self.capacity, generator=self.generator, device="cpu")[: rest.shape[0]]
            self._images[to_device_async(slots, self._images.device)] = rest[: self.capacity]

    def sample(self, n: int) -> Tensor:
        """``n`` distinct stored images chosen at random, (n, C, H, W)."""
        if n > self._filled:
            raise ValueError(f"cannot sample {n} images from a history buffer holding {self._filled}")
        assert self._images is not None
        idx = torch.randperm(self._filled, generator=self.generator, device="cpu")[:n]
        return self._images[to_device_async(idx, self._images.device)]

    def mix(self, fresh: Tensor) -> Tensor:
        """The discriminator's refined mini-batch for this step, and the buffer update.

        Returns floor(b/2) images of ``fresh`` (b, C, H, W) followed by ceil(b/2) from the
        buffer; until the buffer holds that many, returns ``fresh`` unchanged. Then stores
        floor(b/2) fresh images. Never waits for the device (counts are host integers).
        """
        half = fresh.shape[0] // 2
        if half == 0:
            return fresh
        from_buffer = fresh.shape[0] - half  # the larger half when b is odd
        if self._filled >= from_buffer:
            batch = torch.cat([fresh[:half], self.sample(from_buffer)], dim=0)
        else:
            batch = fresh
        self.push(fresh[:half])
        return batch

    def state_dict(self) -> dict[str, object]:
        """Stored images (filled part only) for checkpoints."""
        images = None if self._images is None else self._images[: self._filled].cpu()
        return {"capacity": self.capacity, "images": images}

    def load_state_dict(self, state: dict[str, object], device: torch.device | str = "cpu") -> None:
        """Restore from :meth:`state_dict`."""
        if state["capacity"] != self.capacity:
            raise ValueError(f"checkpoint history buffer capacity {state['capacity']} != configured {self.capacity}")
        self._images, self._filled = None, 0
        images = state["images"]
        if images is not None:
            assert isinstance(images, Tensor)
            self.push(images.to(device))
