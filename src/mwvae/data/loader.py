"""Batches sliced straight from in-memory tensors.

A `DataLoader` over a `TensorDataset` fetches samples one by one and collates
them; here a batch is one indexing operation per modality, which is what
keeps the Trainer close to a plain PyTorch loop.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor


class EpochPermutation:
    """The order of the examples in each epoch: a permutation seeded by
    (seed, epoch), so a resumed run sees the same batches as an uninterrupted
    one. Lightning calls `set_epoch` on a loader's `sampler` every epoch."""

    def __init__(self, size: int, shuffle: bool, seed: int):
        self.size, self.shuffle, self.seed, self.epoch = size, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def generator(self, stream: int = 0) -> torch.Generator:
        """Random numbers of this (seed, epoch); `stream` separates independent uses."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch + stream)

    def indices(self) -> Tensor | None:
        if not self.shuffle:
            return None
        return torch.randperm(self.size, generator=self.generator())


class InMemoryLoader:
    """Yields `dict[str, Tensor]` batches from equally long tensors."""

    batch_sampler = None  # Lightning inspects DataLoader-like attributes

    def __init__(
        self,
        tensors: dict[str, Tensor],
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
    ):
        sizes = {len(t) for t in tensors.values()}
        if len(sizes) != 1:
            raise ValueError(f"all modalities need the same number of examples, got {sizes}")
        self.tensors = tensors
        self.size = sizes.pop()
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = EpochPermutation(self.size, shuffle, seed)

    def __len__(self) -> int:
        if self.drop_last:
            return self.size // self.batch_size
        return math.ceil(self.size / self.batch_size)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        order = self.sampler.indices()
        for i in range(len(self)):
            start, stop = i * self.batch_size, min((i + 1) * self.batch_size, self.size)
            yield self.gather(slice(start, stop) if order is None else order[start:stop])

    def gather(self, index: slice | Tensor) -> dict[str, Tensor]:
        """One batch: the same rows of every tensor."""
        return {m: t[index] for m, t in self.tensors.items()}


def partners_within_class(classes: Tensor, generator: torch.Generator) -> Tensor:
    """For each example, the index of another example of the same class: a
    random cycle through each class, so nobody is paired with itself (in a
    class of two or more)."""
    partners = torch.empty_like(classes)
    for c in classes.unique():
        members = (classes == c).nonzero().squeeze(1)
        cycle = members[torch.randperm(len(members), generator=generator)]
        partners[cycle] = cycle.roll(1)
    return partners


class ClassPairedLoader(InMemoryLoader):
    """Adds a modality `pair_name`: the `source` of another example of the
    same class, re-drawn each epoch from (seed, epoch)."""

    def __init__(
        self, tensors, batch_size, *, source: str, pair_name: str, class_key: str, **kwargs
    ):
        super().__init__(tensors, batch_size, **kwargs)
        self.source, self.pair_name, self.class_key = source, pair_name, class_key

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        generator = self.sampler.generator(stream=7)
        self.partners = partners_within_class(self.tensors[self.class_key], generator)
        return super().__iter__()

    def gather(self, index: slice | Tensor) -> dict[str, Tensor]:
        batch = super().gather(index)
        batch[self.pair_name] = self.tensors[self.source][self.partners[index]]
        return batch
