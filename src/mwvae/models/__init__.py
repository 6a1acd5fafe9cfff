"""Models: the shared base and one file per model."""

from mwvae.models.base import LossTerms, MultimodalVAE, UnsupportedSubsetError
from mwvae.models.fmw_vae import FMWVAE
from mwvae.models.jmvae import JMVAE
from mwvae.models.m_vae_joint import JointMVAE
from mwvae.models.mmvae import MMVAE
from mwvae.models.mmvae_plus import MMVAEPlus
from mwvae.models.mopoe import MoPoE
from mwvae.models.mvae_poe import MVAEPoE
from mwvae.models.mvtcae import MVTCAE
from mwvae.models.mw_vae import MWVAE
from mwvae.models.vae import VAE

__all__ = [
    "FMWVAE",
    "JMVAE",
    "MMVAE",
    "MVTCAE",
    "MMVAEPlus",
    "MVAEPoE",
    "MWVAE",
    "VAE",
    "JointMVAE",
    "LossTerms",
    "MoPoE",
    "MultimodalVAE",
    "UnsupportedSubsetError",
]
