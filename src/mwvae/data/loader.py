"""Batches sliced straight from in-memory tensors.

A `DataLoader` over a `TensorDataset` fetches samples one by one and collates
them; here a batch is one indexing operation per modality, which is what
keeps the Trainer close to a plain PyTorch loop. On an accelerator the
tensors live on the device: a batch is a gather there, and Lightning's
batch transfer has nothing left to copy.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from pytorch_lightning.trainer.states import TrainerStatus
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
    """Yields `dict[str, Tensor]` batches from equally long tensors.

    Under DDP each process passes its `rank` and the `world_size` and gets its
    shard of every epoch: examples rank, rank + world_size, ... of the epoch's
    order, so one step of all ranks together covers one contiguous slice of
    the order (the batches of one process with world_size times the batch
    size). Lightning cannot put a DistributedSampler into this loader.
    `equal_shards` repeats examples from the start of the order so that every
    rank gets as many (DDP steps the ranks together, so training needs it);
    without it the shards partition the split exactly, for evaluation, whose
    example-weighted means Lightning reduces across ranks (`sync_dist`).

    Resumable mid-epoch: `state_dict()` holds the epoch and how many of its
    batches were served. Lightning saves it with the training loop's state in
    every checkpoint and, only when it restarts an unfinished epoch, calls
    `load_state_dict()` before iterating: the epoch's first iteration then
    skips the batches already trained on, in the same (seed, epoch) order.
    Everything an epoch draws is drawn inside the iteration (after Lightning's
    `set_epoch`, which follows its first `iter()`), so subclasses that draw
    per-epoch extras do it in `__iter__`'s generator body too.
    """

    batch_sampler = None  # Lightning inspects DataLoader-like attributes

    def __init__(
        self,
        tensors: dict[str, Tensor],
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        equal_shards: bool = True,
        device: torch.device | str | None = None,
    ):
        sizes = {len(t) for t in tensors.values()}
        if len(sizes) != 1:
            raise ValueError(f"all modalities need the same number of examples, got {sizes}")
        self.device = device  # None: where the tensors are
        self.tensors = {m: t.to(device) for m, t in tensors.items()}
        self.size = sizes.pop()
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not within a world of {world_size} processes")
        if world_size > self.size:
            raise ValueError(f"{self.size} examples cannot be shared among {world_size} processes")
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.rank, self.world_size, self.equal_shards = rank, world_size, equal_shards
        self.sampler = EpochPermutation(self.size, shuffle, seed)
        self.served = 0  # batches of the current iteration handed out so far
        self.resume_at = 0  # batches the next iteration skips (a restored state)

    @property
    def shard_size(self) -> int:
        """The number of examples this process sees per epoch."""
        if self.equal_shards:
            return math.ceil(self.size / self.world_size)
        return len(range(self.rank, self.size, self.world_size))

    def shard(self) -> Tensor | None:
        """This process's examples of this epoch, in order (None: all, unshuffled)."""
        order = self.sampler.indices()
        if self.world_size == 1:
            return order
        if order is None:
            order = torch.arange(self.size)
        if self.equal_shards:
            padding = -self.size % self.world_size  # < world_size <= size
            order = torch.cat([order, order[:padding]])
        return order[self.rank :: self.world_size]

    def __len__(self) -> int:
        if self.drop_last:
            return self.shard_size // self.batch_size
        return math.ceil(self.shard_size / self.batch_size)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        first, self.resume_at = self.resume_at, 0
        order = self.shard()
        if order is not None:
            order = order.to(self.device)
        for i in range(first, len(self)):
            start, stop = i * self.batch_size, min((i + 1) * self.batch_size, self.shard_size)
            self.served = i + 1
            yield self.gather(slice(start, stop) if order is None else order[start:stop])

    def state_dict(self) -> dict[str, int]:
        """Where the current epoch stands (saved in Lightning's checkpoints)."""
        return {"epoch": self.sampler.epoch, "served": self.served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume the checkpoint's epoch after its served batches: Lightning calls
        this only when it restarts an unfinished epoch, and sets that epoch itself."""
        self.sampler.set_epoch(state["epoch"])
        self.resume_at = state["served"] if state["served"] < len(self) else 0

    def gather(self, index: slice | Tensor) -> dict[str, Tensor]:
        """One batch: the same rows of every tensor."""
        return {m: t[index] for m, t in self.tensors.items()}


def distributed_shard(trainer, training: bool) -> dict:
    """The InMemoryLoader options of this process's shard of the loaders a
    running Trainer asks for: under DDP every process loads its own part,
    equal parts for training. Loaders made at other times (`evaluate` on rank
    zero after testing, notebooks) cover the whole split."""
    if trainer is None or trainer.world_size == 1 or trainer.state.status != TrainerStatus.RUNNING:
        return {}
    return {"rank": trainer.global_rank, "world_size": trainer.world_size, "equal_shards": training}


def loader_device(trainer) -> torch.device | None:
    """Where the loaders a running Trainer asks for keep their tensors: its
    accelerator, or None (where they are) on the CPU and outside a run."""
    if trainer is None or trainer.state.status != TrainerStatus.RUNNING:
        return None
    device = trainer.strategy.root_device
    return None if device.type == "cpu" else device


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
        self.source, self.pair_name = source, pair_name
        # Each epoch's pairs are drawn from the classes as given (in host memory
        # in the DataModules), like the order: `nonzero` on an accelerator
        # would make the host wait for it.
        self.classes = tensors[class_key]

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        # A generator: the pairs are drawn at the first batch, once `set_epoch` ran.
        generator = self.sampler.generator(stream=7)
        self.partners = partners_within_class(self.classes, generator).to(self.device)
        yield from super().__iter__()

    def gather(self, index: slice | Tensor) -> dict[str, Tensor]:
        batch = super().gather(index)
        batch[self.pair_name] = self.tensors[self.source][self.partners[index]]
        return batch


class BernoulliLoader(InMemoryLoader):
    """Dynamic binarisation: each epoch, the `resampled` modalities (values in
    [0, 1]) are replaced by a fresh Bernoulli draw of every value, from
    (seed, epoch), so a resumed run sees the same pixels."""

    def __init__(self, tensors, batch_size, *, resampled: tuple[str, ...], **kwargs):
        super().__init__(tensors, batch_size, **kwargs)
        # The probabilities stay in host memory: the draw uses a CPU generator.
        self.probabilities = {m: tensors[m] for m in resampled}

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        generator = self.sampler.generator(stream=11)  # a generator: drawn after `set_epoch`
        for m, p in self.probabilities.items():
            self.tensors[m] = torch.bernoulli(p, generator=generator).to(self.device)
        yield from super().__iter__()
