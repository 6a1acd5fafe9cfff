"""A tiny stand-in for PolyMNIST: five image modalities `m0`..`m4` (3x4x4 in
[0, 1], Laplace likelihoods) that share only their class, `label`, a split
tensor that is no modality; each modality has a classifier of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mwvae.data.module import InMemoryDataModule

NAMES = tuple(f"m{i}" for i in range(5))
SHAPE = [3, 4, 4]
CLASSES = 3
LATENT = 6
IMAGE = {
    "encoder": {"_target_": "mwvae.nets.MLPEncoder", "input_shape": SHAPE, "hidden_dims": [16]},
    "decoder": {"_target_": "mwvae.nets.MLPDecoder", "hidden_dims": [16], "output_shape": SHAPE},
    "likelihood": "laplace",
}
MODALITIES = {m: IMAGE for m in NAMES}
# 128 training tuples: one step an epoch for the classifiers, which train
# this little data for their 100 epochs at most (most of the module's time).
SIZES = {"train": 128, "val": 40, "test": 120}


def make_model(model_class, **kwargs):
    torch.manual_seed(0)
    return model_class(modalities=MODALITIES, latent_dim=LATENT, **kwargs).eval()


def tuples(n: int, seed: int) -> dict[str, torch.Tensor]:
    """n tuples: each modality shows the class as a pattern of its own, with noise."""
    patterns = torch.Generator().manual_seed(123)  # the same patterns in every split
    looks = {m: torch.rand(CLASSES, *SHAPE, generator=patterns) for m in NAMES}
    generator = torch.Generator().manual_seed(seed)
    label = torch.randint(0, CLASSES, (n,), generator=generator)
    split = {"label": label}
    for m in NAMES:
        noise = 0.15 * torch.randn(n, *SHAPE, generator=generator)
        split[m] = (looks[m][label] + noise).clamp(0, 1)
    return split


class FiveImages(InMemoryDataModule):
    MODALITIES = NAMES
    class_key = "label"

    def __init__(self, cache_dir: Path, **options: Any):
        super().__init__(**options)
        self.folder = Path(cache_dir)

    @property
    def cache_dir(self) -> Path:
        return self.folder

    def classifier_source(self, modality: str) -> str | None:
        return modality  # five looks: five classifiers

    def read_splits(self):
        return {name: tuples(n, seed) for seed, (name, n) in enumerate(SIZES.items())}
