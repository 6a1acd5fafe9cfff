"""PolyMNIST (Sutter et al., ICLR 2021): five images `m0`..`m4` (3x28x28 in
[0, 1]) of one digit class, each on its own background, and the class as `label`.

Built offline on first use, the way MoPoE's `mmnist/MMNISTDataset.py` builds
it, from the project's MNIST (the verified cache of `data=mnist`, same
50k/10k/10k splits) and five photographs that scikit-image ships in its wheel
(`BACKGROUNDS`, one per modality; the official dataset uses five other
images, so absolute numbers are not the official dataset's). An image of
modality m: an MNIST digit binarised at > 128 (of 255), a random 28x28 crop
of m's background, and the crop's colours inverted (1 - value) where the
digit is. Tuple i of a split has the class of that split's MNIST image i; in
every modality, m0 included, it shows another MNIST image of that class: per
modality and class, one random permutation of the split's images of that
class (so no modality keeps MNIST's own order, and the five images of a
tuple are five different handwritings, almost always). The draws depend on
`dataset_seed` only, never on the run's `seed`: every run trains on one dataset.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import MISSING
from PIL import Image
from torch import Tensor

from mwvae.data.cache import Layout, Tensors, cached_tensors, tensors_digest
from mwvae.data.mnist import MNISTDataModule
from mwvae.data.mnist_source import READERS, SPLIT_SIZES, SPLITS
from mwvae.data.module import InMemoryDataModule, Split
from mwvae.options import choice
from mwvae.seeds import derived_seed

# scikit-image's photographs in `skimage/data/`, the background of m0, m1, ... in this order.
BACKGROUNDS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg")
MODALITIES = tuple(f"m{i}" for i in range(len(BACKGROUNDS)))
SIDE = 28
DIGIT_THRESHOLD = 128  # MoPoE's: a pixel is part of the digit where its grey level exceeds it
# Part of the cache's metadata: change it with the recipe, and old caches are rebuilt.
RECIPE = "mopoe-1"


def _layout() -> Layout:
    """The cache: per split, each modality's uint8 images, the labels, and what
    made each image (the MNIST image it shows, the top-left corner of its crop)."""
    layout: Layout = {}
    for split, n in SPLIT_SIZES.items():
        for m in MODALITIES:
            layout[f"{split}_{m}"] = ((n, 3, SIDE, SIDE), torch.uint8)
        layout[f"{split}_labels"] = ((n,), torch.int64)
        layout[f"{split}_mnist_indices"] = ((n, len(MODALITIES)), torch.int64)
        layout[f"{split}_crop_corners"] = ((n, len(MODALITIES), 2), torch.int64)
    return layout


LAYOUT = _layout()


def background_dir() -> Path:
    """scikit-image's data folder, located without importing the package (only
    its files are read)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "PolyMNIST's backgrounds are photographs that scikit-image ships: "
            "`pip install 'scikit-image>=0.22'` (a dependency of mwvae)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def read_background_files() -> dict[str, bytes]:
    folder = background_dir()
    return {name: (folder / name).read_bytes() for name in BACKGROUNDS}


def decode_background(data: bytes) -> Tensor:
    """An image file as uint8 RGB (3, H, W)."""
    with Image.open(io.BytesIO(data)) as image:
        pixels = np.asarray(image.convert("RGB"))
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).contiguous()


def class_permutations(labels: Tensor, generator: torch.Generator) -> Tensor:
    """For each example i, the index of an example of the same class: within
    each class, a random permutation of that class's examples."""
    chosen = torch.empty_like(labels)
    for digit in labels.unique().tolist():
        members = (labels == digit).nonzero().squeeze(1)
        chosen[members] = members[torch.randperm(len(members), generator=generator)]
    return chosen


def compose(digits: Tensor, background: Tensor, corners: Tensor) -> Tensor:
    """uint8 images (n, 3, 28, 28): the crops of `background` (3, H, W) whose
    top-left corners are `corners` (n, 2), inverted where `digits` (n, 28, 28) is on."""
    # A view of every 28x28 window, (H - 27, W - 27, 3, 28, 28): picking n of
    # them copies the crops with no (n, 28, 28) index tensors (2x faster here).
    windows = background.unfold(1, SIDE, 1).unfold(2, SIDE, 1).permute(1, 2, 0, 3, 4)
    crops = windows[corners[:, 0], corners[:, 1]]
    # 1 - value on [0, 1] is 255 - value on uint8, i.e. value XOR 255: the cache stays exact.
    crops ^= (digits > DIGIT_THRESHOLD).to(torch.uint8).mul_(255)[:, None]
    return crops


def random_corners(n: int, background: Tensor, generator: torch.Generator) -> Tensor:
    """Top-left corners (n, 2) of uniformly drawn 28x28 crops inside `background`."""
    _, height, width = background.shape
    top = torch.randint(height - SIDE + 1, (n,), generator=generator)
    left = torch.randint(width - SIDE + 1, (n,), generator=generator)
    return torch.stack([top, left], dim=1)


def build_polymnist(mnist: Tensors, backgrounds: list[Tensor], dataset_seed: int) -> Tensors:
    """PolyMNIST's splits from MNIST's (`mnist_source` tensors) and one
    background per modality; each (split, modality) draws from its own stream."""
    tensors: Tensors = {}
    for split in SPLITS:
        images, labels = mnist[f"{split}_images"], mnist[f"{split}_labels"]
        indices, corners = [], []
        for m, background in zip(MODALITIES, backgrounds, strict=True):
            generator = torch.Generator().manual_seed(
                derived_seed("polymnist", dataset_seed, split, m)
            )
            indices.append(class_permutations(labels, generator))
            corners.append(random_corners(len(labels), background, generator))
            tensors[f"{split}_{m}"] = compose(images[indices[-1]], background, corners[-1])
        tensors[f"{split}_labels"] = labels.clone()
        tensors[f"{split}_mnist_indices"] = torch.stack(indices, dim=1)
        tensors[f"{split}_crop_corners"] = torch.stack(corners, dim=1)
    return tensors


class PolyMNISTDataModule(InMemoryDataModule):
    """PolyMNIST's five image modalities and their shared class `label`, read
    from a verified cache built on first use (see the module docstring);
    options: `Options`."""

    MODALITIES = MODALITIES
    class_key = "label"  # the digit every modality of a tuple shows; not a modality

    @dataclass
    class Options(InMemoryDataModule.Options):
        data_dir: str = MISSING  # holds the PolyMNIST cache and its classifiers
        mnist_dir: str = MISSING  # data=mnist's data_dir: its archive and cache are reused
        mnist_source: str = choice(READERS, "offline")  # as data=mnist's `source`
        # The dataset's draws (pairings, crops); not the run's `seed`, so that
        # runs of every seed train on one dataset.
        dataset_seed: int = 0

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.data_dir = Path(self.options.data_dir)

    @property
    def cache_dir(self) -> Path:
        return self.data_dir

    @property
    def cache_path(self) -> Path:
        options = self.options
        # One file per setting: datasets of several seeds live side by side.
        name = f"polymnist_{options.mnist_source}_seed{options.dataset_seed}.safetensors"
        return self.data_dir / name

    def classifier_source(self, modality: str) -> str | None:
        return modality  # five backgrounds: five classifiers

    def load_raw(self) -> Tensors:
        """The uint8 cache (`LAYOUT`), built if it is missing, corrupt or made
        from other inputs (MNIST, a background file, the seed or the recipe)."""
        options = self.options
        mnist = MNISTDataModule(data_dir=options.mnist_dir, source=options.mnist_source).load_raw()
        files = read_background_files()
        metadata = {
            "recipe": RECIPE,
            "dataset_seed": str(options.dataset_seed),
            "mnist_sha256": tensors_digest(mnist),
            **{
                f"background_{m}_sha256": hashlib.sha256(files[name]).hexdigest()
                for m, name in zip(MODALITIES, BACKGROUNDS, strict=True)
            },
        }

        def build() -> Tensors:
            backgrounds = [decode_background(files[name]) for name in BACKGROUNDS]
            return build_polymnist(mnist, backgrounds, options.dataset_seed)

        return cached_tensors(self.cache_path, build, metadata, LAYOUT)

    def prepare_data(self) -> None:
        if not self.cache_path.exists():  # `setup` verifies it (and rebuilds it if corrupt)
            self.load_raw()

    def read_splits(self) -> dict[str, Split]:
        raw, splits = self.load_raw(), {}
        for split in SPLITS:
            n = self.subset_size(split)
            splits[split] = {m: raw[f"{split}_{m}"][:n].float().div_(255.0) for m in MODALITIES}
            splits[split]["label"] = raw[f"{split}_labels"][:n].clone()
        return splits
