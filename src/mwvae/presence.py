"""Which examples of a batch observe which modalities, for the objectives.

A batch may carry `mask/<m>` (see `mwvae.data.missing`). Every loss term is
a batch mean of per-example terms in which an example counts only the terms
of what it observes, as 0 otherwise: the objective stays the mean over
examples of each example's own loss, and a hidden value sends no gradient
anywhere. Terms are selected with `torch.where`, so that with every mask set
each one is bit for bit the unmasked one. Masks are read as tensors, never
on the host, so training steps do not wait for the device.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

from mwvae.data.missing import mask_key
from mwvae.gaussians import count_present

Mask = Tensor | None  # None: every example


def both(a: Mask, b: Mask) -> Mask:
    """Examples in both masks."""
    if a is None:
        return b
    return a if b is None else a & b


def batch_mean(values: Tensor, mask: Mask = None) -> Tensor:
    """The batch mean of per-example `values`, counting examples outside `mask` as 0."""
    if mask is None:
        return values.mean()
    return torch.where(mask, values, 0.0).mean()


class Presence:
    """The presence masks of a batch's modalities."""

    def __init__(self, masks: Mapping[str, Tensor] | None = None):
        self.masks = dict(masks or {})

    @classmethod
    def of(cls, batch: Mapping[str, Tensor], modalities: Iterable[str]) -> Presence:
        """The masks of `modalities` that `batch` carries."""
        return cls({m: batch[mask_key(m)] for m in modalities if mask_key(m) in batch})

    @property
    def complete(self) -> bool:
        """Whether no modality is hidden anywhere (known without reading a mask)."""
        return not self.masks

    def of_modality(self, m: str) -> Mask:
        """The examples that observe m."""
        return self.masks.get(m)

    def all_of(self, modalities: Iterable[str]) -> Mask:
        """The examples that observe every one of `modalities`."""
        mask = None
        for m in modalities:
            mask = both(mask, self.masks.get(m))
        return mask

    def any_of(self, modalities: Iterable[str]) -> Mask:
        """The examples that observe at least one of `modalities`."""
        modalities = list(modalities)
        if any(m not in self.masks for m in modalities):
            return None
        masks = [self.masks[m] for m in modalities]
        return torch.stack(masks).any(0) if masks else None

    def at_least(self, modalities: Iterable[str], n: int) -> Mask:
        """The examples that observe at least `n` of `modalities`."""
        count = self.count(modalities)
        if isinstance(count, int):
            if count < n:
                raise ValueError(f"no example can observe {n} of {count} modalities")
            return None
        return count >= n

    def count(self, modalities: Iterable[str]) -> Tensor | int:
        """How many of `modalities` each example observes (an int when all do)."""
        return count_present(self.restricted(modalities))

    def restricted(self, modalities: Iterable[str]) -> list[Mask]:
        """The mask of each of `modalities`, in order."""
        return [self.masks.get(m) for m in modalities]
