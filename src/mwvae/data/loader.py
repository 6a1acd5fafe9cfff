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

    def indices(self) -> Tensor | None:
        if not self.shuffle:
            return None
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.size, generator=generator)


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
            if order is None:
                yield {m: t[start:stop] for m, t in self.tensors.items()}
            else:
                index = order[start:stop]
                yield {m: t[index] for m, t in self.tensors.items()}
