"""M-VAE with a joint encoder (Sec. 3.3, Fig. 6): one encoder over all modalities.

The ELBO is the base's: every modality decoded from q(z | x, y), one KL term.
The model has no posterior for a strict subset of the modalities: `posterior`
and `reconstruct` raise `UnsupportedSubsetError` rather than impute what is
missing, and the cross-modal metrics are not computed for it. For the same
reason it cannot train on examples that miss a modality (`IncompleteDataError`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from mwvae.gaussians import DiagGaussian
from mwvae.models.base import Batch, MultimodalVAE
from mwvae.nets.joint import JointEncoder
from mwvae.options import bounded


@dataclass
class JointEncoderOptions(MultimodalVAE.Options):
    """The joint encoder's network (`mwvae.nets.joint.JointEncoder`)."""

    feature_dim: int = bounded(256, minimum=1)  # each modality's features before the join
    joint_hidden_dims: list[int] = field(default_factory=lambda: [512])


def joint_encoder(
    modalities: dict[str, dict[str, Any]], options: JointEncoderOptions, latent_dim: int
) -> JointEncoder:
    """One encoder q(z | every modality), as `options` shape it."""
    return JointEncoder.for_modalities(
        modalities, options.feature_dim, options.joint_hidden_dims, latent_dim
    )


class JointMVAE(MultimodalVAE):
    display_name = "M-VAE (joint encoder)"
    trains_on_incomplete_data = False  # the joint encoder reads every modality
    Options = JointEncoderOptions

    def build_encoders(self, modalities: dict[str, dict[str, Any]]) -> nn.ModuleDict:
        return nn.ModuleDict({"joint": joint_encoder(modalities, self.options, self.latent_dim)})

    def can_infer_from(self, observed: Iterable[str]) -> bool:
        return set(observed) == set(self.modality_names)

    def encode(self, observed: Batch) -> dict[str, DiagGaussian]:
        return {"joint": self.encoders["joint"](observed)}
