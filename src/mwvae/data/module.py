"""The one DataModule layer: splits held in memory, batches sliced from them.

`InMemoryDataModule` does what every dataset shares: its options (checked
by `parse_options`, for configs and Python callers alike), the check of the
config's modalities against the declared ones, the seed, the weak
supervision masks of the training split (`mwvae.data.missing`), the subsets,
the loaders' shard and device under a running Trainer, and the three loader
methods. A dataset is a subclass that declares

- `MODALITIES`: the names of the modalities its batches hold;
- `class_key`: the split tensor holding the class every modality of an
  example shares (evaluation: coherence, probes), None if there is none;
- `classifier_source(m)`: the split tensor a classifier for modality m
  trains on (None: no classifier, e.g. m is the class itself);
- `read_splits()`: its `train`, `val` and `test` tensors;
- `rule_readers()`: modalities whose class a rule reads from their decoded
  values instead of a classifier (the COCO demo's token captions);
- `Options`: a dataclass extending `InMemoryDataModule.Options` with its own
  keys of the data config (each default written there only);

and, when it needs to, `prepare_data` (downloads, caches) and `make_loader`
(a loader that draws more than the split's rows, e.g. `ClassPairedLoader`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytorch_lightning as pl
from omegaconf import MISSING
from torch import Tensor

from mwvae.data.loader import InMemoryLoader, distributed_shard, loader_device
from mwvae.data.missing import RANDOM, hidden_modalities
from mwvae.likelihoods import LIKELIHOODS
from mwvae.options import Configurable, OptionError, bounded, choice

log = logging.getLogger(__name__)

Split = dict[str, Tensor]


@dataclass(kw_only=True)
class ModalitySpec:
    """How the model treats a modality: its networks (Hydra specs the model
    builds), its likelihood and the weight of its reconstruction term."""

    encoder: Any = MISSING
    decoder: Any = MISSING
    likelihood: str = choice(LIKELIHOODS.keys())
    weight: float = 1.0


@dataclass
class Subset:
    """Keep the first N examples of a split (null: all of it)."""

    train: int | None = bounded(None, minimum=1)
    val: int | None = bounded(None, minimum=1)
    test: int | None = bounded(None, minimum=1)


def warn_of_oddities(options: Any, train_size: int) -> None:
    """Settings that train, but hardly as meant: said once, at setup."""
    if options.batch_size > train_size:
        log.warning(
            "data.batch_size=%d is larger than the %d training examples: every epoch is one "
            "batch of %d",
            options.batch_size,
            train_size,
            train_size,
        )
    if options.paired_fraction == 0:
        log.warning(
            "data.paired_fraction=0: no training example has every modality, so nothing "
            "teaches the model how the modalities relate (cross-modal coherence stays at chance)"
        )


def split_size(split: Split) -> int:
    return len(next(iter(split.values())))


class InMemoryDataModule(Configurable, pl.LightningDataModule):
    """A LightningDataModule whose splits are `dict[str, Tensor]` in memory
    and whose loaders are `InMemoryLoader`s (see the module docstring)."""

    MODALITIES: ClassVar[tuple[str, ...]] = ()
    class_key: ClassVar[str | None] = None

    @dataclass
    class Options:
        # Each modality's networks and likelihood, for the model; the DataModule
        # only checks their names (none given: all of its own).
        modalities: dict[str, ModalitySpec] = field(default_factory=dict)
        batch_size: int = bounded(128, minimum=1)
        eval_batch_size: int = bounded(1000, minimum=1)
        subset: Subset = field(default_factory=Subset)
        seed: int | None = None  # of the masks, the order and the pairs (null: 0)
        # On an accelerator, keep the splits in its memory (batches are gathered
        # there); false keeps them in host memory and copies each batch.
        on_device: bool = True
        # Weak supervision: the share of training examples that keep every
        # modality; each of the others keeps only `unpaired_keep` (one of the
        # modalities, or `random`: one drawn per example). Fixed by the seed;
        # see `mwvae.data.missing`. Validation and test stay complete.
        paired_fraction: float = bounded(1.0, minimum=0.0, maximum=1.0)
        unpaired_keep: str = RANDOM

    def __init__(self, **options: Any):
        super().__init__()
        self.options = self.parse_options(options, "data")
        self.seed = 0 if self.options.seed is None else self.options.seed
        self.splits: dict[str, Split] = {}

    @classmethod
    def check_options(cls, options: Any, prefix: str, **context: Any) -> None:
        unknown = sorted(set(options.modalities) - set(cls.MODALITIES))
        if unknown:
            raise OptionError(
                f"{prefix}.modalities: {cls.__name__} has no modality {unknown}; "
                f"it has {list(cls.MODALITIES)}"
            )
        if options.unpaired_keep != RANDOM and options.unpaired_keep not in cls.MODALITIES:
            raise OptionError(
                f"{prefix}.unpaired_keep: {options.unpaired_keep!r}; choose {RANDOM!r} "
                f"or one of {list(cls.MODALITIES)}"
            )

    # What a dataset declares.

    def classifier_source(self, modality: str) -> str | None:
        """The training tensor of a classifier for `modality` (evaluation); None: no classifier."""
        return None

    def rule_readers(self) -> dict[str, Callable[[Tensor], Tensor]]:
        """Modality -> a function of its decoded values that gives their classes."""
        return {}

    def read_splits(self) -> dict[str, Split]:
        """The `train`, `val` and `test` tensors, each split's equally long."""
        raise NotImplementedError

    def make_loader(self, split: str, batch_size: int, **options: Any) -> InMemoryLoader:
        """The loader of a split; `options` are InMemoryLoader's (order, device, shard)."""
        return InMemoryLoader(self.splits[split], batch_size, **options)

    @property
    def cache_dir(self) -> Path:
        """Where evaluation caches the classifiers of `classifier_source`."""
        raise NotImplementedError(
            f"{type(self).__name__} names a classifier source but no cache_dir to keep "
            "its classifiers in: define the property"
        )

    # What every dataset shares.

    def subset_size(self, split: str) -> int | None:
        """How many of a split's first examples to keep (None: all)."""
        return getattr(self.options.subset, split)

    def hidden_modalities(self, num_examples: int) -> dict[str, Tensor]:
        """The masks of `num_examples` training examples (`missing.hidden_modalities`
        with these options); {} when every example keeps everything."""
        options = self.options
        return hidden_modalities(
            num_examples, self.MODALITIES, options.paired_fraction, options.unpaired_keep, self.seed
        )

    def training_masks(self) -> dict[str, Tensor]:
        """The masks the training split carries: `hidden_modalities` of its examples."""
        return self.hidden_modalities(split_size(self.splits["train"]))

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        splits = self.read_splits()
        for name, split in splits.items():
            n = self.subset_size(name)
            if n is not None and n < split_size(split):  # a reader that did not cut it already
                splits[name] = {k: v[:n].clone() for k, v in split.items()}
        self.splits = splits
        self.splits["train"] |= self.training_masks()
        warn_of_oddities(self.options, split_size(self.splits["train"]))

    def loader_options(self, split: str, shuffle: bool) -> dict[str, Any]:
        """Order, the device of a running Trainer and, under DDP, this rank's shard."""
        shard = distributed_shard(self.trainer, training=split == "train")
        device = loader_device(self.trainer) if self.options.on_device else None
        return {"shuffle": shuffle, "seed": self.seed, "device": device, **shard}

    def loader(self, split: str, batch_size: int, shuffle: bool) -> InMemoryLoader:
        return self.make_loader(split, batch_size, **self.loader_options(split, shuffle))

    def train_dataloader(self) -> InMemoryLoader:
        return self.loader("train", self.options.batch_size, shuffle=True)

    def val_dataloader(self) -> InMemoryLoader:
        return self.loader("val", self.options.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> InMemoryLoader:
        return self.loader("test", self.options.eval_batch_size, shuffle=False)
