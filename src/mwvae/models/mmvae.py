"""MMVAE (Shi et al. 2019): the joint posterior is a mixture of the unimodal experts.

q(z | X) = 1/M * sum_m q(z | x_m). The loss is the stratified ELBO with one
sample per expert: for each m, z_m ~ q(z | x_m) and every modality is
decoded from z_m, with log q(z_m | X) - log p(z_m) as the KL estimate;
the M terms are averaged. (The original uses K importance samples with DReG
gradients and a Laplace prior; this is the K = 1 ELBO with a Gaussian prior,
MultiVae's `elbo` variant.) `posterior` of several modalities returns the
moment-matched Gaussian of their mixture, which `reconstruct` decodes.
"""

from __future__ import annotations

import math

import torch

from mwvae.gaussians import DiagGaussian
from mwvae.models.base import Batch, LossTerms, MultimodalVAE


def mixture_log_prob(experts: list[DiagGaussian], z: torch.Tensor) -> torch.Tensor:
    """log (1/M sum_m q_m(z)), per example."""
    return torch.logsumexp(torch.stack([q.log_prob(z) for q in experts]), 0) - math.log(
        len(experts)
    )


class MMVAE(MultimodalVAE):
    def fuse(self, posteriors: dict[str, DiagGaussian]) -> DiagGaussian:
        """The Gaussian with the mean and variance of the equal-weight mixture."""
        experts = list(posteriors.values())
        if len(experts) == 1:
            return experts[0]
        mu = torch.stack([q.mu for q in experts]).mean(0)
        second_moment = torch.stack([q.logvar.exp() + q.mu.square() for q in experts]).mean(0)
        return DiagGaussian(mu, (second_moment - mu.square()).log())

    def elbo_terms(self, batch: Batch, posteriors: dict[str, DiagGaussian]) -> LossTerms:
        experts = list(posteriors.values())
        recon = dict.fromkeys(batch, 0.0)
        kl = 0.0
        for q in experts:
            z = q.rsample()
            for m in batch:
                recon[m] = recon[m] + self.reconstruction_nll(batch, m, z) / len(experts)
            prior = DiagGaussian.standard(z)
            log_ratio = mixture_log_prob(experts, z) - prior.log_prob(z)
            kl = kl + log_ratio.mean() / len(experts)
        loss = sum(recon.values()) + self.beta_now * kl
        return LossTerms(loss=loss, recon=recon, kl={"mixture": kl})
