"""Fully connected encoders and decoders (784-512-512 for MNIST images, as in
the published multimodal VAE baselines)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from mwvae.gaussians import LOGVAR_MAX, LOGVAR_MIN, DiagGaussian, at_least_float32


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if i > 0:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class GaussianHead(nn.Module):
    """Maps features to the mean and (bounded) log-variance of q(z | x)."""

    def __init__(self, in_features: int, latent_dim: int):
        super().__init__()
        self.linear = nn.Linear(in_features, 2 * latent_dim)

    def forward(self, h: Tensor) -> DiagGaussian:
        # The KL, W2, product-of-experts and mixture terms sum and exponentiate
        # these: float32 even when autocast computes the layer in bf16.
        mu, logvar = at_least_float32(self.linear(h)).chunk(2, dim=-1)
        return DiagGaussian(mu, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX))


class MLPEncoder(nn.Module):
    """Flattens a real-valued input and encodes it with an MLP."""

    def __init__(self, input_shape: Sequence[int], hidden_dims: Sequence[int], latent_dim: int):
        super().__init__()
        sizes = [math.prod(input_shape), *hidden_dims]
        self.body = nn.Sequential(mlp(sizes), nn.ReLU())
        self.head = GaussianHead(sizes[-1], latent_dim)

    def forward(self, x: Tensor) -> DiagGaussian:
        return self.head(self.body(x.flatten(1)))


class CategoricalEncoder(nn.Module):
    """Encodes a class index; the embedding is a one-hot input times a linear layer."""

    def __init__(self, num_classes: int, hidden_dims: Sequence[int], latent_dim: int):
        super().__init__()
        self.embed = nn.Embedding(num_classes, hidden_dims[0])
        self.body = nn.Sequential(nn.ReLU(), *mlp(hidden_dims), nn.ReLU())
        self.head = GaussianHead(hidden_dims[-1], latent_dim)

    def forward(self, y: Tensor) -> DiagGaussian:
        return self.head(self.body(self.embed(y)))


class MLPDecoder(nn.Module):
    """Decodes a latent code into likelihood parameters of the given shape."""

    def __init__(self, latent_dim: int, hidden_dims: Sequence[int], output_shape: Sequence[int]):
        super().__init__()
        self.output_shape = tuple(output_shape)
        self.net = mlp([latent_dim, *hidden_dims, math.prod(self.output_shape)])

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).unflatten(-1, self.output_shape)
