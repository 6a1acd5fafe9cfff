"""JMVAE-kl (Suzuki et al. 2016): a joint encoder, plus unimodal encoders
trained to match it.

loss = -E_{q(z|X)} sum_m log p(x_m | z) + beta * KL(q(z|X) || p(z))
       + alpha * sum_m KL(q(z|X) || q(z|x_m)).
All modalities are inferred by the joint encoder, a single one by its own
encoder; a strict subset of two or more (three modalities and up) has no
posterior and raises `UnsupportedSubsetError`. Every term needs the joint
encoder, so it cannot train on examples that miss a modality.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from torch import nn

from mwvae.gaussians import DiagGaussian, kl_divergence, kl_to_standard_normal
from mwvae.models.base import Batch, LossTerms, MultimodalVAE
from mwvae.models.m_vae_joint import JointEncoderOptions, joint_encoder
from mwvae.options import OptionError, bounded
from mwvae.presence import Presence

JOINT = "joint"


class JMVAE(MultimodalVAE):
    display_name = "JMVAE-kl"
    trains_on_incomplete_data = False  # every term needs the joint posterior

    @dataclass
    class Options(JointEncoderOptions):
        alpha: float = bounded(0.1, minimum=0)  # weight of KL(q(z|X) || q(z|x_m)), summed over m

    @classmethod
    def check_options(cls, options: Options, prefix: str, **context: Any) -> None:
        if JOINT in context.get("modalities", {}):
            raise OptionError(f"data.modalities.{JOINT}: JMVAE reserves the name; rename it")

    def build_encoders(self, modalities: dict[str, dict[str, Any]]) -> nn.ModuleDict:
        encoders = super().build_encoders(modalities)
        encoders[JOINT] = joint_encoder(modalities, self.options, self.latent_dim)
        return encoders

    def can_infer_from(self, observed: Iterable[str]) -> bool:
        observed = set(observed)
        return len(observed) == 1 or observed == set(self.modality_names)

    def posterior(self, observed: Batch) -> DiagGaussian:
        self.check_observed(observed)
        if len(observed) == 1:
            ((m, x),) = observed.items()
            return self.encoders[m](x)
        return self.encoders[JOINT](observed)

    def elbo_terms(
        self, batch: Batch, posteriors: dict[str, DiagGaussian], presence: Presence
    ) -> LossTerms:
        joint = self.encoders[JOINT](batch)
        z = joint.rsample()
        recon = {m: self.reconstruction_nll(batch, m, z) for m in batch}
        kl = {JOINT: kl_to_standard_normal(joint).mean()}
        to_unimodal = {
            f"kl_joint_to/{m}": kl_divergence(joint, q).mean() for m, q in posteriors.items()
        }
        loss = (
            sum(recon.values())
            + self.beta_now * kl[JOINT]
            + self.options.alpha * sum(to_unimodal.values())
        )
        return LossTerms(loss=loss, recon=recon, kl=kl, extra=to_unimodal)
