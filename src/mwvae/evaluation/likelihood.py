"""Importance-weighted log-likelihood estimates (Burda et al. 2016).

log p(x_S) ~ logsumexp_k [log p(x_S | z_k) + log p(z_k) - log q(z_k | x_G)] - log K,
z_k ~ q(z | x_G), with the model's own proposal for the given modalities G
(`latent_proposal`). Samples are drawn in chunks of K and decoded for a
whole batch of examples at once. Likelihood weights of the training
objective are not applied: these are log-densities.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

from mwvae.gaussians import DiagGaussian
from mwvae.models.base import Batch, MultimodalVAE


@torch.no_grad()
def importance_log_likelihood(
    model: MultimodalVAE,
    batch: Batch,
    scored: Iterable[str],
    given: Iterable[str] | None = None,
    k: int = 1000,
    k_chunk: int = 100,
) -> Tensor:
    """Per example, the K-sample estimate of log p(x_scored), with the
    proposal q(z | x_given) (by default the scored modalities themselves)."""
    scored = list(scored)
    given = scored if given is None else list(given)
    proposal = model.latent_proposal({m: batch[m] for m in given})
    log_weights = []
    for start in range(0, k, k_chunk):
        n = min(k_chunk, k - start)
        z = proposal.mu + proposal.std * torch.randn(
            n, *proposal.mu.shape, device=proposal.mu.device
        )
        log_w = DiagGaussian.standard(z).log_prob(z) - proposal.log_prob(z)
        flat = z.flatten(0, 1)
        logits = model.decode_latent(flat, scored)
        for m in scored:
            target = batch[m].unsqueeze(0).expand(n, *batch[m].shape).flatten(0, 1)
            log_w = log_w - model.likelihoods[m].nll(logits[m], target).view(n, -1)
        log_weights.append(log_w)
    return torch.logsumexp(torch.cat(log_weights), 0) - math.log(k)
