"""VAE (Kingma & Welling 2014) on one modality of the dataset: the unimodal reference."""

from __future__ import annotations

from typing import Any

from mwvae.models.base import MultimodalVAE


class VAE(MultimodalVAE):
    """The base's ELBO with a single modality, chosen by `modality`.

    It infers only from that modality; `posterior` and `reconstruct` raise a
    KeyError for any other.
    """

    def __init__(
        self,
        modalities: dict[str, dict[str, Any]],
        latent_dim: int,
        modality: str = "image",
        **kwargs,
    ):
        if modality not in modalities:
            raise ValueError(f"model.modality={modality!r}; the data has {list(modalities)}")
        super().__init__({modality: modalities[modality]}, latent_dim, **kwargs)
