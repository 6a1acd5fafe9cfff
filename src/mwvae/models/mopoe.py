"""MoPoE-VAE (Sutter et al. 2021): a mixture of the products of experts of all subsets.

q(z | X) = 1 / (2^M - 1) * sum_S PoE(p(z), {q(z | x_m)}_{m in S}). The loss is the
average over the non-empty subsets S of the negative ELBO of PoE_S: every
modality decoded from z ~ PoE_S, and KL(PoE_S || p(z)) (the paper's Jensen
bound on the KL of the mixture). A subset is inferred from by its PoE.
"""

from __future__ import annotations

from mwvae.gaussians import DiagGaussian, kl_to_standard_normal, product_of_experts
from mwvae.models.base import Batch, LossTerms, MultimodalVAE, nonempty_subsets


class MoPoE(MultimodalVAE):
    def fuse(self, posteriors: dict[str, DiagGaussian]) -> DiagGaussian:
        return product_of_experts(list(posteriors.values()), prior_expert=True)

    def elbo_terms(self, batch: Batch, posteriors: dict[str, DiagGaussian]) -> LossTerms:
        subsets = nonempty_subsets(list(posteriors))
        recon = dict.fromkeys(batch, 0.0)
        kl = 0.0
        for subset in subsets:
            q = self.fuse({m: posteriors[m] for m in subset})
            z = q.rsample()
            for m in batch:
                recon[m] = recon[m] + self.reconstruction_nll(batch, m, z) / len(subsets)
            kl = kl + kl_to_standard_normal(q).mean() / len(subsets)
        loss = sum(recon.values()) + self.beta_now * kl
        return LossTerms(loss=loss, recon=recon, kl={"mixture": kl})
