"""Tiny modalities and batches for model tests: 4x4 binary images, 3 classes."""

from __future__ import annotations

import torch

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
MODALITIES = {"image": IMAGE, "label": LABEL}
MODALITIES3 = {"image": IMAGE, "label": LABEL, "image2": IMAGE}


def make_model(model_class, modalities=MODALITIES, **kwargs):
    torch.manual_seed(0)
    return model_class(modalities=modalities, latent_dim=LATENT, **kwargs)


def make_batch(n=5, modalities=MODALITIES):
    generator = torch.Generator().manual_seed(1)
    batch = {}
    for name, spec in modalities.items():
        if spec["likelihood"] == "bernoulli":
            batch[name] = torch.rand(n, 1, 4, 4, generator=generator).round()
        else:
            batch[name] = torch.randint(0, 3, (n,), generator=generator)
    return batch
