"""MVTCAE (Hwang et al., NeurIPS 2021, "Multi-View Representation Learning via
Total Correlation Objective"): a product of experts trained on the total
correlation bound.

Joint posterior: q(z | X) proportional to prod_m q(z | x_m), the
precision-weighted product of the observed unimodal posteriors *without* a
prior expert, as the authors' code does (`ivw_fusion` in
gr8joo/MVTCAE/utils/BaseMMVae.py, the fusion of their method `tc`) and as
MultiVae's MVTCAE says ("a Product-of-Experts ... but without the prior").
mVAE-PoE (Wu & Goodman) adds the N(0, I) expert; MVTCAE does not.

Loss, for M modalities, z ~ q(z | X) once (the paper's objective as the
authors' code computes it, `basic_routine_epoch` in gr8joo/MVTCAE's
`run_epochs.py` for their method `tc`; MultiVae's MVTCAE documents and
computes the same formula):

    (M - alpha) / M * sum_m -log p(x_m | z)
    + beta * [(1 - alpha) * KL(q(z|X) || p(z)) + alpha / M * sum_m KL(q(z|X) || q(z|x_m))]

It is alpha times the conditional VIB terms, (1/M) sum_m [E log p(X_{-m} | z)
- KL(q(z|X) || q(z|x_m))], plus (1 - alpha) times the VIB term,
E log p(X | z) - KL(q(z|X) || p(z)); each x_n is reconstructed by M - 1 of
the M conditional terms and by the VIB term, hence the reconstruction's
weight alpha (M - 1) / M + 1 - alpha = (M - alpha) / M. With alpha = 0 it is
the ELBO of the product of experts. The paper's PolyMNIST runs use
alpha = 5/6 (`TC_RATIO` in the authors' `main_mmnist.py`, the default here)
and beta = 2.5 (`model.beta=2.5`; our other models' default, 1, stays).
`kl/joint` is KL(q(z|X) || p(z)), `kl_joint_to/<m>` the KL to each unimodal
posterior (named as JMVAE's), `recon/<m>` the unweighted -log p(x_m | z).

On incomplete data (the authors' indication, as MultiVae applies it) an
example's product is over the experts it observes, and the terms of the
modalities it misses count 0 (an infinite decoder variance); the weights
keep M, the number of modalities of the data. Every example observes at
least one modality (without a prior expert, an empty product is undefined).
"""

from __future__ import annotations

from dataclasses import dataclass

from mwvae.gaussians import DiagGaussian, kl_divergence, product_of_experts
from mwvae.models.base import Batch, LossTerms, MultimodalVAE, masks
from mwvae.options import bounded
from mwvae.presence import Presence, batch_mean


class MVTCAE(MultimodalVAE):
    display_name = "MVTCAE"

    @dataclass
    class Options(MultimodalVAE.Options):
        # Total correlation ratio: the share of the conditional VIB terms (0: the PoE's ELBO).
        alpha: float = bounded(5 / 6, minimum=0, maximum=1)

    def fuse(
        self, posteriors: dict[str, DiagGaussian], presence: Presence | None = None
    ) -> DiagGaussian:
        return product_of_experts(
            list(posteriors.values()), prior_expert=False, masks=masks(posteriors, presence)
        )

    def elbo_terms(
        self, batch: Batch, posteriors: dict[str, DiagGaussian], presence: Presence
    ) -> LossTerms:
        terms = super().elbo_terms(batch, posteriors, presence)
        q = self.fuse(posteriors, presence)  # what the base's ELBO sampled from
        terms.extra = {
            f"kl_joint_to/{m}": batch_mean(kl_divergence(q, q_m), presence.of_modality(m))
            for m, q_m in posteriors.items()
        }
        alpha, num_modalities = self.options.alpha, len(posteriors)
        divergence = (1 - alpha) * terms.kl["joint"] + alpha / num_modalities * sum(
            terms.extra.values()
        )
        terms.loss = (num_modalities - alpha) / num_modalities * sum(
            terms.recon.values()
        ) + self.beta_now * divergence
        return terms
