"""Which modalities each training example keeps: weak supervision.

Real multimodal data arrives incomplete (an image without its caption). A
split stores, next to each modality `m`, a boolean tensor `mask/m`: whether
each example observes m. The loaders gather the masks with the data, so a
batch carries them; a batch without `mask/m` observes m in every example.
The models read them (`mwvae.presence.Presence`): a hidden modality's value
is a placeholder that no loss term sees. It must be finite all the same:
the networks run on it (a NaN would reach the weights' gradients through
the matrix products' backward).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mwvae.seeds import derived_seed

MASK_PREFIX = "mask/"
RANDOM = "random"


def mask_key(modality: str) -> str:
    return MASK_PREFIX + modality


def hidden_modalities(
    num_examples: int,
    modalities: Sequence[str],
    paired_fraction: float,
    unpaired_keep: str,
    seed: int,
) -> dict[str, Tensor]:
    """Presence masks `{mask/<m>: bool (num_examples,)}` hiding modalities:
    `round(paired_fraction * num_examples)` examples, chosen at random, keep
    every modality; each of the others keeps only `unpaired_keep` (a modality
    name) or, with `random`, one modality drawn uniformly. Fixed by `seed`
    alone. `{}` when every example keeps everything. The settings are checked
    with the DataModule's options (`InMemoryDataModule.check_options`)."""
    modalities = list(modalities)
    num_paired = round(paired_fraction * num_examples)
    if num_paired == num_examples:
        return {}
    generator = torch.Generator().manual_seed(derived_seed(seed, "hidden modalities"))
    paired = torch.zeros(num_examples, dtype=torch.bool)
    paired[torch.randperm(num_examples, generator=generator)[:num_paired]] = True
    if unpaired_keep == RANDOM:
        kept = torch.randint(len(modalities), (num_examples,), generator=generator)
    else:
        kept = torch.full((num_examples,), modalities.index(unpaired_keep))
    return {mask_key(m): paired | (kept == i) for i, m in enumerate(modalities)}
