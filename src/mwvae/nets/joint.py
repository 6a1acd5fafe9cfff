"""An encoder over several modalities at once, q(z | x_1, ..., x_M)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from hydra.utils import instantiate
from torch import Tensor, nn

from mwvae.gaussians import DiagGaussian
from mwvae.nets.mlp import GaussianHead, mlp


class JointEncoder(nn.Module):
    """Each modality's own encoder network, its Gaussian head sized
    `feature_dim`, extracts features (its mean output); an MLP over the
    concatenated features gives the joint posterior. Any modality the
    dataset can encode alone can therefore be encoded jointly."""

    def __init__(
        self,
        encoders: dict[str, dict[str, Any]],
        feature_dim: int,
        hidden_dims: Sequence[int],
        latent_dim: int,
    ):
        super().__init__()
        self.features = nn.ModuleDict(
            {m: instantiate(spec, latent_dim=feature_dim) for m, spec in encoders.items()}
        )
        sizes = [feature_dim * len(encoders), *hidden_dims]
        self.body = nn.Sequential(nn.ReLU(), mlp(sizes), nn.ReLU()) if hidden_dims else nn.ReLU()
        self.head = GaussianHead(sizes[-1], latent_dim)

    @classmethod
    def for_modalities(
        cls,
        modalities: dict[str, dict[str, Any]],
        feature_dim: int,
        hidden_dims: Sequence[int],
        latent_dim: int,
    ) -> JointEncoder:
        """A joint encoder over the encoders of a data config's modalities."""
        return cls(
            {m: spec["encoder"] for m, spec in modalities.items()},
            feature_dim,
            hidden_dims,
            latent_dim,
        )

    def forward(self, observed: dict[str, Tensor]) -> DiagGaussian:
        features = torch.cat([net(observed[m]).mu for m, net in self.features.items()], dim=-1)
        return self.head(self.body(features))
