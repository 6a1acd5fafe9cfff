"""MoPoE-VAE (Sutter et al. 2021): a mixture of the products of experts of all subsets.

q(z | X) = 1 / (2^M - 1) * sum_S PoE(p(z), {q(z | x_m)}_{m in S}). The loss is the
average over the non-empty subsets S of the negative ELBO of PoE_S: every
modality decoded from z ~ PoE_S, and KL(PoE_S || p(z)) (the paper's Jensen
bound on the KL of the mixture). A subset is inferred from by its PoE.
On incomplete data an example's mixture is over the subsets of what it
observes (Sutter et al.'s weak supervision): each of its 2^n - 1 subsets
counts 1 / (2^n - 1).
"""

from __future__ import annotations

from mwvae.gaussians import DiagGaussian, kl_to_standard_normal, product_of_experts
from mwvae.models.base import Batch, LossTerms, MultimodalVAE, masks, nonempty_subsets
from mwvae.presence import Presence, batch_mean, both


class MoPoE(MultimodalVAE):
    def fuse(
        self, posteriors: dict[str, DiagGaussian], presence: Presence | None = None
    ) -> DiagGaussian:
        return product_of_experts(
            list(posteriors.values()), prior_expert=True, masks=masks(posteriors, presence)
        )

    def proposal_subsets(self, names: list[str]) -> list[list[str]]:
        """Every subset: the components of its own mixture (all of them last)."""
        return [list(subset) for subset in nonempty_subsets(names)]

    def elbo_terms(
        self, batch: Batch, posteriors: dict[str, DiagGaussian], presence: Presence
    ) -> LossTerms:
        subsets = nonempty_subsets(list(posteriors))
        # Each example's number of subsets of what it observes.
        share = 2 ** presence.count(posteriors) - 1
        recon = dict.fromkeys(batch, 0.0)
        kl = 0.0
        for subset in subsets:
            examples = presence.all_of(subset)  # their PoE_S is over present experts
            q = self.fuse({m: posteriors[m] for m in subset})
            z = q.rsample()
            for m in batch:
                observed = both(examples, presence.of_modality(m))
                recon[m] = recon[m] + self.reconstruction_nll(batch, m, z, observed, share)
            kl = kl + batch_mean(kl_to_standard_normal(q) / share, examples)
        loss = sum(recon.values()) + self.beta_now * kl
        return LossTerms(loss=loss, recon=recon, kl={"mixture": kl})
