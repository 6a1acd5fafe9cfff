"""M-VAE with a joint encoder (Sec. 3.3, Fig. 6): one encoder over all modalities.

The ELBO is the base's: every modality decoded from q(z | x, y), one KL term.
The model has no posterior for a strict subset of the modalities: `posterior`
and `reconstruct` raise `UnsupportedSubsetError` rather than impute what is
missing, and the cross-modal metrics are not computed for it. For the same
reason it cannot train on examples that miss a modality (`IncompleteDataError`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from torch import nn

from mwvae.gaussians import DiagGaussian
from mwvae.models.base import Batch, MultimodalVAE
from mwvae.nets.joint import JointEncoder


class JointMVAE(MultimodalVAE):
    trains_on_incomplete_data = False  # the joint encoder reads every modality

    def __init__(
        self,
        modalities: dict[str, dict[str, Any]],
        latent_dim: int,
        feature_dim: int = 256,
        joint_hidden_dims: Sequence[int] = (512,),
        **kwargs,
    ):
        super().__init__(modalities, latent_dim, **kwargs)

    def build_encoders(self, modalities: dict[str, dict[str, Any]]) -> nn.ModuleDict:
        joint = JointEncoder.for_modalities(
            modalities,
            self.hparams.feature_dim,
            self.hparams.joint_hidden_dims,
            self.hparams.latent_dim,
        )
        return nn.ModuleDict({"joint": joint})

    def can_infer_from(self, observed: Iterable[str]) -> bool:
        return set(observed) == set(self.modality_names)

    def encode(self, observed: Batch) -> dict[str, DiagGaussian]:
        return {"joint": self.encoders["joint"](observed)}
