"""MNIST as `image` (1x28x28 in [0, 1]) and `label` (0-9); MNIST3 adds `image2`.

Binarisation (`binarize`): `none` keeps grey levels; `threshold` sets a pixel
to 1 above 0.5; `fixed` draws every pixel once from a Bernoulli of its grey
level (seeded: the same binary set every run); `dynamic` draws the training
images afresh each epoch (as MultiVae's `MnistLabels(random_binarized=True)`
and the JMVAE / MVAE likelihood results) and evaluates on one fixed draw of
validation and test (seeded, so evaluations compare).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import MISSING

from mwvae.data.cache import cached_tensors
from mwvae.data.loader import BernoulliLoader, ClassPairedLoader, InMemoryLoader
from mwvae.data.mnist_source import LAYOUT, READERS, SPLITS
from mwvae.data.module import InMemoryDataModule, Split
from mwvae.options import choice

BINARIZATIONS = ("none", "threshold", "fixed", "dynamic")


class MNISTDataModule(InMemoryDataModule):
    """Image + label MNIST, split 50k/10k/10k, read from the verified cache of
    its source (`mwvae.data.mnist_source`); options: `Options`."""

    MODALITIES = ("image", "label")
    class_key = "label"  # every modality of an example shows its digit

    @dataclass
    class Options(InMemoryDataModule.Options):
        data_dir: str = MISSING  # holds the offline archive and the converted cache
        # offline: the archive `make data` fetched; torchvision: download it.
        source: str = choice(READERS, "offline")
        # Grey levels (none) or binary pixels: see the module docstring.
        binarize: str = choice(BINARIZATIONS, "none")

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.data_dir = Path(self.options.data_dir)

    @property
    def cache_dir(self) -> Path:
        return self.data_dir

    @property
    def cache_path(self) -> Path:
        return self.data_dir / f"mnist_{self.options.source}.safetensors"

    def classifier_source(self, modality: str) -> str | None:
        """The image itself; none for the label, which is the class."""
        return "image" if modality == "image" else None

    def load_raw(self) -> dict[str, torch.Tensor]:
        """uint8 images and int64 labels of every split, from the verified cache."""
        source = self.options.source
        return cached_tensors(
            self.cache_path, lambda: READERS[source](self.data_dir), {"source": source}, LAYOUT
        )

    def prepare_data(self) -> None:
        if not self.cache_path.exists():  # `setup` verifies it (and rebuilds it if corrupt)
            self.load_raw()

    def read_splits(self) -> dict[str, Split]:
        raw, splits = self.load_raw(), {}
        for index, split in enumerate(SPLITS):
            n = self.subset_size(split)
            images = raw[f"{split}_images"][:n].unsqueeze(1).float().div_(255.0)
            splits[split] = {
                "image": self.binarized(images, split, index),
                "label": raw[f"{split}_labels"][:n].clone(),
            }
        return splits

    def binarized(self, images: torch.Tensor, split: str, index: int) -> torch.Tensor:
        """A split's images as `binarize` says (dynamic: training images stay
        grey here; their loader draws them each epoch)."""
        mode = self.options.binarize
        if mode == "threshold":
            return (images > 0.5).float()
        if mode == "fixed" or (mode == "dynamic" and split != "train"):
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + 500_000 + index)
            return torch.bernoulli(images, generator=generator)
        return images

    def make_loader(self, split: str, batch_size: int, **options: Any) -> InMemoryLoader:
        if self.options.binarize == "dynamic" and split == "train":
            return BernoulliLoader(self.splits[split], batch_size, resampled=("image",), **options)
        return super().make_loader(split, batch_size, **options)


class MNIST3DataModule(MNISTDataModule):
    """Three modalities: `image`, `label`, and `image2`, another image of the
    same digit (another example of the class: MNIST does not record writers,
    so a different example stands in for a different writer). Training pairs
    are re-drawn each epoch from (seed, epoch); validation and test pairs are
    fixed by the seed."""

    MODALITIES = ("image", "label", "image2")

    def classifier_source(self, modality: str) -> str | None:
        return "image" if modality in ("image", "image2") else None

    def make_loader(self, split: str, batch_size: int, **options: Any) -> ClassPairedLoader:
        pairs = {"source": "image", "pair_name": "image2", "class_key": "label"}
        if self.options.binarize == "dynamic" and split == "train":
            # The pair is the partner's image of this epoch's draw.
            return BinarizedPairLoader(
                self.splits[split], batch_size, resampled=("image",), **pairs, **options
            )
        return ClassPairedLoader(self.splits[split], batch_size, **pairs, **options)


class BinarizedPairLoader(BernoulliLoader, ClassPairedLoader):
    """MNIST3's training pairs over dynamically binarised images."""
