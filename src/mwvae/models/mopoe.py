"""MoPoE-VAE (Sutter et al. 2021): a mixture of the products of experts of all subsets.

q(z | X) = 1 / (2^M - 1) * sum_S PoE(p(z), {q(z | x_m)}_{m in S}). The loss is the
average over the non-empty subsets S of the negative ELBO of PoE_S: every
modality decoded from z ~ PoE_S, and KL(PoE_S || p(z)) (the paper's Jensen
bound on the KL of the mixture). A subset is inferred from by its PoE.
On incomplete data an example's mixture is over the subsets of what it
observes (Sutter et al.'s weak supervision): each of its 2^n - 1 subsets
counts 1 / (2^n - 1).

`subsets` says how the reconstruction term averages over the mixture:
`all` decodes every modality from a sample of every subset (the exact
average; 2^M - 1 decodings of each modality), `sampled` decodes each example
once, from a sample of one of its subsets drawn uniformly (an unbiased
estimate of the same average at the cost of one decoding, as MoPoE's own
code does by splitting the batch among the subsets), and `auto` is `all` up
to three modalities and `sampled` beyond (PolyMNIST's five modalities would
decode 31 times). The KL term is the exact average either way.

`prior_expert` says which products include the prior p(z) as an expert:
`every_subset` (the formula above), or `whole_set`, only the product of all
modalities, as MoPoE's own code and MultiVae's do (a single modality's
component is then its own posterior q(z | x_m), not q(z | x_m) p(z)
renormalised).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mwvae.gaussians import DiagGaussian, kl_to_standard_normal, product_of_experts
from mwvae.models.base import Batch, LossTerms, MultimodalVAE, masks, nonempty_subsets
from mwvae.options import choice
from mwvae.presence import Presence, batch_mean, both

SUBSET_AVERAGES = ("auto", "all", "sampled")
PRIOR_EXPERTS = ("every_subset", "whole_set")
MOST_DECODED_SUBSETS = 7  # `auto` decodes every subset up to 3 modalities


class MoPoE(MultimodalVAE):
    display_name = "MoPoE-VAE"

    @dataclass
    class Options(MultimodalVAE.Options):
        # How the reconstruction term averages over the subsets (see the module docstring).
        subsets: str = choice(SUBSET_AVERAGES, "auto")
        # Which products include p(z) as an expert (see the module docstring).
        prior_expert: str = choice(PRIOR_EXPERTS, "every_subset")

    def fuse(
        self, posteriors: dict[str, DiagGaussian], presence: Presence | None = None
    ) -> DiagGaussian:
        with_prior = self.options.prior_expert == "every_subset" or len(posteriors) == len(
            self.modality_names
        )
        return product_of_experts(
            list(posteriors.values()), prior_expert=with_prior, masks=masks(posteriors, presence)
        )

    def proposal_subsets(self, names: list[str]) -> list[list[str]]:
        """Every subset: the components of its own mixture (all of them last)."""
        return [list(subset) for subset in nonempty_subsets(names)]

    def decodes_every_subset(self, num_subsets: int) -> bool:
        if self.options.subsets == "auto":
            return num_subsets <= MOST_DECODED_SUBSETS
        return self.options.subsets == "all"

    def elbo_terms(
        self, batch: Batch, posteriors: dict[str, DiagGaussian], presence: Presence
    ) -> LossTerms:
        subsets = nonempty_subsets(list(posteriors))
        # Each example's number of subsets of what it observes.
        share = 2 ** presence.count(posteriors) - 1
        products = [self.fuse({m: posteriors[m] for m in subset}) for subset in subsets]
        # Examples whose PoE_S is over present experts: those observing all of S.
        members = [presence.all_of(subset) for subset in subsets]
        kl = sum(
            batch_mean(kl_to_standard_normal(q) / share, examples)
            for q, examples in zip(products, members, strict=True)
        )
        if self.decodes_every_subset(len(subsets)):
            recon = dict.fromkeys(batch, 0.0)
            for q, examples in zip(products, members, strict=True):
                z = q.rsample()
                for m in batch:
                    observed = both(examples, presence.of_modality(m))
                    recon[m] = recon[m] + self.reconstruction_nll(batch, m, z, observed, share)
        else:
            z = self.one_subset_sample(products, members)
            recon = {
                m: self.reconstruction_nll(batch, m, z, presence.of_modality(m)) for m in batch
            }
        loss = sum(recon.values()) + self.beta_now * kl
        return LossTerms(loss=loss, recon=recon, kl={"mixture": kl})

    @staticmethod
    def one_subset_sample(products: list[DiagGaussian], members: list) -> torch.Tensor:
        """One sample of each example's mixture: a subset drawn uniformly among
        those it observes, then z from that subset's PoE."""
        like = products[0].mu[..., 0]
        scores = torch.stack(
            [
                torch.rand_like(like) if k is None else torch.where(k, torch.rand_like(like), -1.0)
                for k in members
            ]
        )
        chosen = scores.argmax(0)  # uniform over the subsets an example has
        mu = torch.stack([q.mu for q in products])
        logvar = torch.stack([q.logvar for q in products])
        index = chosen.view(1, -1, 1).expand(1, *mu.shape[1:])
        return DiagGaussian(mu.gather(0, index)[0], logvar.gather(0, index)[0]).rsample()
