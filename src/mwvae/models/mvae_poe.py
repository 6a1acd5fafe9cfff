"""mVAE-PoE (Wu & Goodman 2018): the joint posterior is a product of experts.

q(z | X_S) is proportional to p(z) * prod_{m in S} q(z | x_m), precision-weighted, so any
subset of modalities has a posterior. With `subsample: true` (the original
training) the loss adds to the joint ELBO the ELBO of each single modality,
and for more than two modalities `num_random_subsets` random subsets of
intermediate size per step; with `subsample: false` only the joint ELBO is
trained, the baseline the paper shows (Figs. 8-9).

On incomplete data (Wu & Goodman's weak supervision) each example's terms
come from what it observes: a subset's ELBO counts for the examples that
observe all of it, and the joint ELBO (the product of the observed experts)
for those observing two modalities or more, with sub-sampling (an example
with one modality has its single-modality ELBO), for all without.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch

from mwvae.gaussians import DiagGaussian, product_of_experts
from mwvae.models.base import Batch, LossTerms, MultimodalVAE, masks
from mwvae.options import bounded
from mwvae.presence import Presence


class MVAEPoE(MultimodalVAE):
    display_name = "mVAE-PoE"

    @dataclass
    class Options(MultimodalVAE.Options):
        subsample: bool = True  # add each single modality's ELBO (false: the joint ELBO only)
        num_random_subsets: int = bounded(1, minimum=0)  # per step, with 3+ modalities

    def __init__(self, modalities: dict[str, dict[str, Any]], latent_dim: int, **options: Any):
        super().__init__(modalities, latent_dim, **options)
        # The subsets steer Python control flow, so Python's generator draws
        # them: reading a tensor's value at every step would make the host wait
        # for the device. Reseeded with torch's generator at every step (see
        # `MultimodalVAE.reseed`), so seeded and resumed runs repeat.
        self.subset_rng = random.Random(torch.initial_seed())

    def on_reseed(self, seed: int) -> None:
        self.subset_rng.seed(seed)

    def fuse(
        self, posteriors: dict[str, DiagGaussian], presence: Presence | None = None
    ) -> DiagGaussian:
        return product_of_experts(
            list(posteriors.values()), prior_expert=True, masks=masks(posteriors, presence)
        )

    def training_subsets(self, names: list[str]) -> list[list[str]]:
        """The strict subsets whose ELBOs are added: each single modality, and
        random subsets of intermediate size when there are more than two."""
        subsets = [[m] for m in names]
        if len(names) > 2:
            for _ in range(self.options.num_random_subsets):
                size = self.subset_rng.randrange(2, len(names))
                chosen = self.subset_rng.sample(range(len(names)), size)
                subsets.append([names[i] for i in sorted(chosen)])
        return subsets

    def elbo_terms(
        self, batch: Batch, posteriors: dict[str, DiagGaussian], presence: Presence
    ) -> LossTerms:
        if not self.options.subsample or len(posteriors) < 2:
            return super().elbo_terms(batch, posteriors, presence)
        # An example with one modality has that modality's ELBO below, not a joint one too.
        terms = self.fused_elbo(batch, posteriors, presence, presence.at_least(batch, 2))
        subset_loss = 0.0
        for subset in self.training_subsets(list(posteriors)):
            sub = self.fused_elbo(
                {m: batch[m] for m in subset},
                {m: posteriors[m] for m in subset},
                presence,
                presence.all_of(subset),
            )
            subset_loss = subset_loss + sum(sub.recon.values()) + self.beta_now * sub.kl["joint"]
        terms.loss = terms.loss + subset_loss
        terms.extra["subset_loss"] = subset_loss
        return terms
