"""Models: the shared base and one file per model."""

from mwvae.models.base import LossTerms, MultimodalVAE
from mwvae.models.mw_vae import MWVAE

__all__ = ["MWVAE", "LossTerms", "MultimodalVAE"]
