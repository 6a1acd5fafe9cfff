"""Encoders (input -> diagonal Gaussian) and decoders (latent -> likelihood parameters)."""

from mwvae.nets.mlp import CategoricalEncoder, MLPDecoder, MLPEncoder

__all__ = ["CategoricalEncoder", "MLPDecoder", "MLPEncoder"]
