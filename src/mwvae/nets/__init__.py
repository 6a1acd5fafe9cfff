"""Encoders (input -> diagonal Gaussian) and decoders (latent -> likelihood parameters)."""

from mwvae.nets.conv import ConvDecoder, ConvEncoder
from mwvae.nets.joint import JointEncoder
from mwvae.nets.mlp import CategoricalEncoder, MLPDecoder, MLPEncoder
from mwvae.nets.sequence import TokenDecoder, TokenEncoder

__all__ = [
    "CategoricalEncoder",
    "ConvDecoder",
    "ConvEncoder",
    "JointEncoder",
    "MLPDecoder",
    "MLPEncoder",
    "TokenDecoder",
    "TokenEncoder",
]
