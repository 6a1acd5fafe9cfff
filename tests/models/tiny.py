"""Tiny modalities and batches for model tests: 4x4 binary images, 3 classes,
captions of up to 4 tokens in a vocabulary of 7 ids."""

from __future__ import annotations

import torch

from mwvae.special_tokens import EOS_ID, PAD_ID, SPECIALS

LATENT = 6
IMAGE = {
    "encoder": {"_target_": "mwvae.nets.MLPEncoder", "input_shape": [1, 4, 4], "hidden_dims": [16]},
    "decoder": {
        "_target_": "mwvae.nets.MLPDecoder",
        "hidden_dims": [16],
        "output_shape": [1, 4, 4],
    },
    "likelihood": "bernoulli",
}
LABEL = {
    "encoder": {"_target_": "mwvae.nets.CategoricalEncoder", "num_classes": 3, "hidden_dims": [8]},
    "decoder": {"_target_": "mwvae.nets.MLPDecoder", "hidden_dims": [8], "output_shape": [3]},
    "likelihood": "categorical",
    "weight": 2.0,
}
VOCAB, LENGTH = 7, 5
SEQUENCE = {"vocab_size": VOCAB, "embedding_dim": 4, "hidden_dim": 8}
TOKENS = {
    "encoder": {"_target_": "mwvae.nets.TokenEncoder", **SEQUENCE},
    "decoder": {"_target_": "mwvae.nets.TokenDecoder", "max_length": LENGTH, **SEQUENCE},
    "likelihood": "tokens",
}
MODALITIES = {"image": IMAGE, "label": LABEL}
MODALITIES3 = {"image": IMAGE, "label": LABEL, "image2": IMAGE}
MODALITIES_TOKENS = {"image": IMAGE, "caption": TOKENS}


def make_captions(n: int, generator: torch.Generator) -> torch.Tensor:
    """(n, LENGTH) ids: 1 to LENGTH - 1 word ids, [EOS], then [PAD]."""
    ids = torch.randint(len(SPECIALS), VOCAB, (n, LENGTH), generator=generator)
    lengths = torch.randint(1, LENGTH, (n, 1), generator=generator)
    position = torch.arange(LENGTH)
    ids[position == lengths] = EOS_ID
    return ids.masked_fill(position > lengths, PAD_ID)


def make_model(model_class, modalities=MODALITIES, **kwargs):
    torch.manual_seed(0)
    return model_class(modalities=modalities, latent_dim=LATENT, **kwargs)


def make_batch(n=5, modalities=MODALITIES):
    generator = torch.Generator().manual_seed(1)
    batch = {}
    for name, spec in modalities.items():
        if spec["likelihood"] == "bernoulli":
            batch[name] = torch.rand(n, 1, 4, 4, generator=generator).round()
        elif spec["likelihood"] == "tokens":
            batch[name] = make_captions(n, generator)
        else:
            batch[name] = torch.randint(0, 3, (n,), generator=generator)
    return batch
