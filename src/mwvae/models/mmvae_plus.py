"""MMVAE+ (Palumbo, Daunhawer & Vogt, ICLR 2023, "MMVAE+: Enhancing the
Generative Quality of Multimodal VAEs without Compromises"): MMVAE with a
private code per modality, filled from an auxiliary prior in cross-modal
reconstructions.

Each encoder outputs a code [z_m, w_m]: `latent_dim` shared dimensions and
`private_dim` private ones (none for the modalities in `shared_only`, by
default the label, which has no style; see `mwvae.models.private_codes`).
Decoder n reads [z, w_n]. The joint posterior of z is MMVAE's mixture
q(z | X) = 1/M sum_m q(z | x_m) of the shared parts.

Objective: the stratified importance-weighted bound over the modalities m
(strata), K = `k` samples each (the paper's objective as MultiVae documents
it; the same weights as the authors' `_m_iwae`, epalu/mmvaeplus
src/objectives.py, and MultiVae's `_compute_k_lws`):

    z^k, w_m^k ~ q(z, w_m | x_m),   w~_n^k ~ r_n = N(0, aux_scale^2 I) for n != m,
    log W_m^k = sum_n lambda_n log p(x_n | z^k, w_n^k)
                + beta * [log p(z^k) + log p(w_m^k) - log q(z^k | X) - log q(w_m^k | x_m)],
    with w_n^k = w_m^k for n = m and w~_n^k otherwise,
    loss = -1/M sum_m [logsumexp_k log W_m^k - log K]   (batch mean).

The auxiliary draws w~_n only feed the decoders of the other modalities: no
density of theirs (neither r_n nor p) enters the weights, so the shared code
alone must carry what x_n needs from x_m. beta multiplies the prior and
posterior terms inside the weights, as both codes do; lambda_n are the data's
likelihood weights. With K = 1 the bound is the stratified ELBO with
sampled KL estimates: `kl/shared` (log q(z|X) - log p(z)) and `kl/private`
(log q(w_m|x_m) - log p(w_m)), averaged over strata and samples, as
`recon/<n>`; `loss` is the negative bound.

`estimator`: `iwae` differentiates the bound; `dreg` (the authors' default
objective) uses the doubly reparameterised gradients of Tucker et al. 2019:
log q with every posterior's parameters stopped (the mixture's experts too),
the gradient into each sample scaled by its normalised weight, so the
encoders get sum_k W~_k^2 d log W_k / d(z_k, w_k) and the decoders
sum_k W~_k d log W_k; the loss's value stays the bound. (The authors' DReG
scores with unstopped parameters, as MultiVae notes; MultiVae stops them.)

Deviations, all deliberate: Gaussians throughout where the paper uses
Laplace prior, posteriors and r; r's scale is fixed (`aux_scale`, the
prior's 1 by default) where the authors and MultiVae learn it through a
softmax that keeps its mean scale at the prior's. Defaults: K = 1 with
`iwae` and 32 private dimensions, the setting MultiVae reproduced the
paper's PolyMNIST coherence with (`examples/mmvae_plus/mmnist.py`: K = 1,
`iwae_looser`, 32 shared + 32 private, beta 2.5); `model.k=10
model.estimator=dreg` is the authors' other setting.

Inference: `posterior` is the shared posterior (MMVAE's moment-matched
mixture); `reconstruct` fills an unobserved modality's private code from r
(style `prior`: its mean 0, or a draw of std `aux_scale` when sampling);
`decode` reads the whole latent [z, w_m ...] under the prior N(0, I), where
prior samples, the joint coherence and the likelihood estimates live.

On incomplete data (as MultiVae's MMVAE+) an example's mixture and strata are
over the modalities it observes, and its weights count the likelihoods of
those only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from mwvae.gaussians import DiagGaussian
from mwvae.models.base import Batch, LossTerms, masks
from mwvae.models.mmvae import MMVAE, mixture_log_prob
from mwvae.models.private_codes import PrivateCodes
from mwvae.options import bounded, choice
from mwvae.presence import Presence, batch_mean, both

ESTIMATORS = ("iwae", "dreg")


def stopped(q: DiagGaussian) -> DiagGaussian:
    """q with its parameters cut from the graph (DReG's score function)."""
    return DiagGaussian(q.mu.detach(), q.logvar.detach())


class MMVAEPlus(PrivateCodes, MMVAE):
    display_name = "MMVAE+"

    @dataclass
    class Options(MMVAE.Options):
        private_dim: int = bounded(32, minimum=0)  # size of each private code w_m
        # Modalities without a private code (labels have no style).
        shared_only: list[str] = field(default_factory=lambda: ["label"])
        k: int = bounded(1, minimum=1)  # importance samples per modality (1: the ELBO)
        estimator: str = choice(ESTIMATORS, "iwae")  # the bound's gradient, or DReG's
        aux_scale: float = bounded(1.0, above=0)  # std of the auxiliary prior r_n(w)

    @property
    def imputation_std(self) -> float:
        return self.options.aux_scale

    def fuse(
        self, posteriors: dict[str, DiagGaussian], presence: Presence | None = None
    ) -> DiagGaussian:
        """MMVAE's moment-matched mixture of the shared parts."""
        return super().fuse(self.aligned_parts(posteriors), presence)

    def elbo_terms(
        self, batch: Batch, posteriors: dict[str, DiagGaussian], presence: Presence
    ) -> LossTerms:
        k, beta = self.options.k, self.beta_now
        dreg = self.options.estimator == "dreg"
        scored = {m: stopped(q) for m, q in posteriors.items()} if dreg else posteriors
        experts = [self.split(q)[0] for q in scored.values()]
        kept = masks(posteriors, presence)
        share = presence.count(posteriors)  # each example's number of strata
        recon = dict.fromkeys(batch, 0.0)
        kl = {"shared": 0.0, "private": 0.0}
        bound = 0.0
        for m, q in posteriors.items():
            examples = presence.of_modality(m)
            code = q.mu + q.std * torch.randn(
                (k, *q.mu.shape), dtype=q.mu.dtype, device=q.mu.device
            )
            z, w = code.split([self.latent_dim, self.private_dim(m)], -1)
            private = self.auxiliary_codes(m, z) | {m: w}
            log_lik = 0.0
            for n in batch:
                nll = self.weighted_nll(batch, n, torch.cat([z, private.get(n, z[..., :0])], -1))
                recon[n] = recon[n] + batch_mean(
                    nll.mean(0) / share, both(examples, presence.of_modality(n))
                )
                observed = presence.of_modality(n)
                log_lik = log_lik - (nll if observed is None else torch.where(observed, nll, 0.0))
            shared_ratio = mixture_log_prob(experts, z, kept) - DiagGaussian.standard(z).log_prob(z)
            private_ratio = self.split(scored[m])[1].log_prob(w) - DiagGaussian.standard(
                w
            ).log_prob(w)
            log_weights = log_lik - beta * (shared_ratio + private_ratio)  # (K, batch)
            stratum = torch.logsumexp(log_weights, 0) - math.log(k)
            if dreg and code.requires_grad:
                stratum = self.dreg_surrogate(stratum, log_weights, code)
            bound = bound + batch_mean(stratum / share, examples)
            kl["shared"] = kl["shared"] + batch_mean(shared_ratio.mean(0) / share, examples)
            kl["private"] = kl["private"] + batch_mean(private_ratio.mean(0) / share, examples)
        return LossTerms(loss=-bound, recon=recon, kl=kl)

    def auxiliary_codes(self, m: str, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Draws of r_n(w) = N(0, aux_scale^2 I) for the private code of every
        other modality, shaped like z's samples; one draw, even an empty one."""
        others = [n for n in self.private_modalities if n != m]
        sizes = [self.private_dim(n) for n in others]
        draws = torch.randn((*z.shape[:-1], sum(sizes)), dtype=z.dtype, device=z.device)
        return dict(zip(others, (self.options.aux_scale * draws).split(sizes, -1), strict=True))

    def weighted_nll(self, batch: Batch, n: str, codes: torch.Tensor) -> torch.Tensor:
        """lambda_n * -log p(x_n | code) for (K, batch) codes: shape (K, batch)."""
        logits = self.decoders[n](codes.flatten(0, 1))
        target = batch[n].expand(len(codes), *batch[n].shape).flatten(0, 1)
        nll = self.likelihoods[n].nll(logits, target).view(codes.shape[:2])
        return self.recon_weights[n] * nll

    @staticmethod
    def dreg_surrogate(
        bound: torch.Tensor, log_weights: torch.Tensor, code: torch.Tensor
    ) -> torch.Tensor:
        """`bound`'s value with DReG's gradient: sum_k W~_k log W_k (the decoders'
        IWAE gradient), and a hook scaling the gradient into each sample by W~_k
        once more (the encoders' W~_k^2; log q's parameters are already stopped)."""
        normalised = torch.softmax(log_weights.detach(), 0)
        code.register_hook(lambda grad: grad * normalised.unsqueeze(-1))
        surrogate = (normalised * log_weights).sum(0)
        return bound.detach() + surrogate - surrogate.detach()
