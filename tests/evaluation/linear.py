"""A linear Gaussian encoder for likelihood tests (probabilistic PCA)."""

from __future__ import annotations

import torch
from torch import nn

from mwvae.gaussians import DiagGaussian


class LinearEncoder(nn.Module):
    def __init__(self, in_features: int, latent_dim: int):
        super().__init__()
        self.mean = nn.Linear(in_features, latent_dim)
        self.logvar = nn.Parameter(torch.zeros(latent_dim))

    def forward(self, x):
        mu = self.mean(x)
        return DiagGaussian(mu, self.logvar.expand_as(mu))
