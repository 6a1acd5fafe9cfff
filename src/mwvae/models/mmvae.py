"""MMVAE (Shi et al. 2019): the joint posterior is a mixture of the unimodal experts.

q(z | X) = 1/M * sum_m q(z | x_m). The loss is the stratified ELBO with one
sample per expert: for each m, z_m ~ q(z | x_m) and every modality is
decoded from z_m, with log q(z_m | X) - log p(z_m) as the KL estimate;
the M terms are averaged. (The original uses K importance samples with DReG
gradients and a Laplace prior; this is the K = 1 ELBO with a Gaussian prior,
MultiVae's `elbo` variant.) `posterior` of several modalities returns the
moment-matched Gaussian of their mixture, which `reconstruct` decodes.
On incomplete data an example's mixture is over the experts of what it
observes, and so are its samples.
"""

from __future__ import annotations

import math

import torch

from mwvae.gaussians import DiagGaussian, count_present, mean_of_present
from mwvae.models.base import Batch, LossTerms, MultimodalVAE, masks
from mwvae.presence import Mask, Presence, batch_mean, both


def mixture_log_prob(
    experts: list[DiagGaussian], z: torch.Tensor, masks: list[Mask] | None = None
) -> torch.Tensor:
    """log (1/M sum_m q_m(z)), per example; with `masks` (one per expert, per
    example; None: every example), over the experts each example has."""
    masks = masks or [None] * len(experts)
    log_probs = [
        q.log_prob(z) if k is None else torch.where(k, q.log_prob(z), -math.inf)
        for q, k in zip(experts, masks, strict=True)
    ]
    count = count_present(masks)
    log_count = math.log(count) if isinstance(count, int) else count.to(z.dtype).log()
    return torch.logsumexp(torch.stack(log_probs), 0) - log_count


class MMVAE(MultimodalVAE):
    display_name = "MMVAE"

    def fuse(
        self, posteriors: dict[str, DiagGaussian], presence: Presence | None = None
    ) -> DiagGaussian:
        """The Gaussian with the mean and variance of the equal-weight mixture
        (per example, of the experts it has)."""
        experts = list(posteriors.values())
        if len(experts) == 1:
            return experts[0]
        kept = masks(posteriors, presence)
        mu = mean_of_present([q.mu for q in experts], kept)
        second_moment = mean_of_present([q.logvar.exp() + q.mu.square() for q in experts], kept)
        return DiagGaussian(mu, (second_moment - mu.square()).log())

    def elbo_terms(
        self, batch: Batch, posteriors: dict[str, DiagGaussian], presence: Presence
    ) -> LossTerms:
        experts = list(posteriors.values())
        share = presence.count(posteriors)  # each example's number of experts
        recon = dict.fromkeys(batch, 0.0)
        kl = 0.0
        for expert, q in posteriors.items():
            examples = presence.of_modality(expert)
            z = q.rsample()
            for m in batch:
                observed = both(examples, presence.of_modality(m))
                recon[m] = recon[m] + self.reconstruction_nll(batch, m, z, observed, share)
            prior = DiagGaussian.standard(z)
            log_ratio = mixture_log_prob(experts, z, masks(posteriors, presence)) - prior.log_prob(
                z
            )
            kl = kl + batch_mean(log_ratio / share, examples)
        loss = sum(recon.values()) + self.beta_now * kl
        return LossTerms(loss=loss, recon=recon, kl={"mixture": kl})
