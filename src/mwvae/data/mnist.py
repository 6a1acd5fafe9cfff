"""MNIST as `image` (1x28x28 in [0, 1]) and `label` (0-9); MNIST3 adds `image2`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from mwvae.data.cache import cached_tensors
from mwvae.data.loader import ClassPairedLoader, InMemoryLoader, distributed_shard, loader_device
from mwvae.data.missing import RANDOM, check_hiding, hidden_modalities
from mwvae.data.mnist_source import LAYOUT, READERS, SPLITS


class MNISTDataModule(pl.LightningDataModule):
    """Image + label MNIST, split 50k/10k/10k, served from in-memory tensors.

    Args:
        data_dir: holds the offline archive and the converted cache.
        modalities: the per-modality network specs of the data config; only
            their names are checked here (the model builds the networks).
        source: `offline` (the archive fetched by `make data`) or `torchvision`.
        binarize: threshold pixels at 0.5 (fixed binarization) instead of
            keeping grey levels.
        subset: optional number of examples per split, e.g. {train: 1000}.
        on_device: under a Trainer on an accelerator, keep the splits on its
            device (batches are gathered there); false keeps them in host
            memory and copies each batch.
        paired_fraction: the share of training examples that keep every
            modality; each of the others keeps only `unpaired_keep` (a
            modality, or `random`: one drawn per example). Fixed by the seed;
            see `mwvae.data.missing`. Validation and test stay complete.
    """

    MODALITIES = ("image", "label")
    # Evaluation: the split tensor holding the class every modality of an example shares.
    class_key = "label"

    def __init__(
        self,
        data_dir: str,
        modalities: dict[str, Any] | None = None,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        source: str = "offline",
        binarize: bool = False,
        subset: dict[str, int] | None = None,
        seed: int | None = 0,
        on_device: bool = True,
        paired_fraction: float = 1.0,
        unpaired_keep: str = RANDOM,
    ):
        super().__init__()
        if source not in READERS:
            raise ValueError(f"data.source={source!r}; choose one of {sorted(READERS)}")
        unknown = set(modalities or ()) - set(self.MODALITIES)
        if unknown:
            raise ValueError(
                f"{type(self).__name__} has no modality {sorted(unknown)}; "
                f"it has {list(self.MODALITIES)}"
            )
        self.data_dir = Path(data_dir)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.source, self.binarize = source, binarize
        self.subset = dict(subset or {})
        self.seed = 0 if seed is None else seed
        self.on_device = on_device
        check_hiding(paired_fraction, unpaired_keep, self.MODALITIES)
        self.paired_fraction, self.unpaired_keep = paired_fraction, unpaired_keep
        self.splits: dict[str, dict[str, torch.Tensor]] = {}

    @property
    def cache_dir(self) -> Path:
        return self.data_dir

    def classifier_source(self, modality: str) -> str | None:
        """The training tensor of a classifier for `modality` (evaluation): the
        image itself; none for the label, which is the class."""
        return "image" if modality == "image" else None

    @property
    def cache_path(self) -> Path:
        return self.data_dir / f"mnist_{self.source}.safetensors"

    def load_raw(self) -> dict[str, torch.Tensor]:
        """uint8 images and int64 labels of every split, from the verified cache."""
        return cached_tensors(
            self.cache_path,
            lambda: READERS[self.source](self.data_dir),
            {"source": self.source},
            layout=LAYOUT,
        )

    def prepare_data(self) -> None:
        if not self.cache_path.exists():  # `setup` verifies it (and rebuilds it if corrupt)
            self.load_raw()

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        raw = self.load_raw()
        for split in SPLITS:
            n = self.subset.get(split)
            images = raw[f"{split}_images"][:n].unsqueeze(1).float().div_(255.0)
            if self.binarize:
                images = (images > 0.5).float()
            self.splits[split] = {"image": images, "label": raw[f"{split}_labels"][:n].clone()}
        train = self.splits["train"]
        train |= hidden_modalities(
            len(train["label"]),
            self.MODALITIES,
            self.paired_fraction,
            self.unpaired_keep,
            self.seed,
        )

    def loader(self, split: str, batch_size: int, shuffle: bool) -> InMemoryLoader:
        return InMemoryLoader(self.splits[split], batch_size, **self.loader_options(split, shuffle))

    def loader_options(self, split: str, shuffle: bool) -> dict:
        """Order, the device of a running Trainer and, under DDP, this rank's shard."""
        shard = distributed_shard(self.trainer, training=split == "train")
        device = loader_device(self.trainer) if self.on_device else None
        return {"shuffle": shuffle, "seed": self.seed, "device": device, **shard}

    def train_dataloader(self) -> InMemoryLoader:
        return self.loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> InMemoryLoader:
        return self.loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> InMemoryLoader:
        return self.loader("test", self.eval_batch_size, shuffle=False)


class MNIST3DataModule(MNISTDataModule):
    """Three modalities: `image`, `label`, and `image2`, another image of the
    same digit (another example of the class: MNIST does not record writers,
    so a different example stands in for a different writer). Training pairs
    are re-drawn each epoch from (seed, epoch); validation and test pairs are
    fixed by the seed."""

    MODALITIES = ("image", "label", "image2")

    def classifier_source(self, modality: str) -> str | None:
        return "image" if modality in ("image", "image2") else None

    def loader(self, split: str, batch_size: int, shuffle: bool) -> ClassPairedLoader:
        return ClassPairedLoader(
            self.splits[split],
            batch_size,
            source="image",
            pair_name="image2",
            class_key="label",
            **self.loader_options(split, shuffle),
        )
