"""Annealed importance sampling (AIS) of log p(x_S) (Wu et al. 2017, "On the
quantitative analysis of decoder-based generative models"; Neal 2001).

Chains start from the prior z ~ p(z) = N(0, I) and move along the geometric
path pi_t(z) ∝ p(z) p(x_S | z)^beta_t, beta_0 = 0 < ... < beta_T = 1 (the
sigmoidal schedule of Grosse et al. 2015). Before the transition to pi_t a
chain's log-weight gains (beta_t - beta_{t-1}) log p(x_S | z); the transition
is one Hamiltonian Monte Carlo step (Gaussian momentum, a few leapfrog steps,
Metropolis-Hastings accept/reject) that leaves pi_t invariant, with a step
size per chain adapted towards 65% acceptance and jittered per transition.
exp(log w) is an unbiased estimate of p(x_S), so the log of the average over
chains is a stochastic lower bound that tightens as the schedule gets longer.

Every example and chain moves at once (rows = chains x examples) and each
leapfrog step decodes all rows once. The gradient of log p(x_S | z) at the
chain's current point is kept from the last leapfrog step, so a transition
costs `leapfrog` decodes. Likelihood weights of the training objective are
not applied: these are log-densities.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

from mwvae.evaluation.settings import AISSettings
from mwvae.models.base import Batch, MultimodalVAE

TARGET_ACCEPT = 0.65  # Wu et al.'s (and Neal's) target for HMC
ADAPT_RATE = 0.05
SIGMOID_RADIUS = 4.0  # the steepness of the sigmoidal schedule (Grosse et al., Wu et al.)
JITTER = 0.5  # each transition's step is uniform in eps * [1 - JITTER, 1 + JITTER]
# The adapted step sizes stay in this range: the prior N(0, I) sets the scale of z,
# posteriors are rarely wider, and a leapfrog step of more than half of that is coarse.
MIN_STEP, MAX_STEP = 1e-4, 0.5


def sigmoid_schedule(steps: int, radius: float = SIGMOID_RADIUS) -> Tensor:
    """steps + 1 inverse temperatures from exactly 0 to exactly 1, dense at
    both ends where the intermediate distributions change fastest."""
    s = torch.sigmoid(torch.linspace(-radius, radius, steps + 1, dtype=torch.float64))
    beta = (s - s[0]) / (s[-1] - s[0])
    beta[0], beta[-1] = 0.0, 1.0  # exact despite rounding
    return beta


@torch.no_grad()
def ais_log_likelihood(
    model: MultimodalVAE,
    batch: Batch,
    scored: Iterable[str],
    steps: int = AISSettings.steps,
    leapfrog: int = AISSettings.leapfrog,
    chains: int = AISSettings.chains,
    step_size: float = 0.1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Per example (shape (N,)), the AIS estimate of log p(x_scored) from
    `chains` independent chains with `steps` annealing steps of one HMC
    transition of `leapfrog` leapfrog steps each. `step_size` is where the
    step sizes start; they adapt within [MIN_STEP, MAX_STEP]. Every random
    draw uses `generator` (None: the global RNG). The model is used in
    whatever mode it is in: eval mode is recommended (dropout, batch norm)."""
    scored = list(scored)
    for name, value in (("steps", steps), ("leapfrog", leapfrog), ("chains", chains)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not (isinstance(step_size, (int, float)) and math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be a finite number > 0, got {step_size!r}")
    if not scored:
        raise ValueError("scored must name at least one modality")
    for m in scored:
        if m not in model.likelihoods:
            raise ValueError(f"{m!r} is not a modality of the model: {sorted(model.likelihoods)}")
        if m not in batch:
            raise KeyError(f"modality {m!r} is scored but missing from the batch")

    dtype = next(model.parameters()).dtype
    device = model.device
    n = len(batch[scored[0]])
    rows = chains * n  # row c * n + i: chain c of example i
    targets = {
        m: batch[m].to(device).unsqueeze(0).expand(chains, *batch[m].shape).flatten(0, 1)
        for m in scored
    }

    def log_lik_and_grad(z: Tensor) -> tuple[Tensor, Tensor]:
        """log p(x_S | z) per row and its gradient in z (and in z only: the
        parameters accumulate no .grad)."""
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            outputs = model.decode(z, scored)
            ll = -sum(model.likelihoods[m].nll(outputs[m], targets[m]) for m in scored)
            (grad,) = torch.autograd.grad(ll.sum(), z)
        return ll.detach(), grad

    def log_prior(z: Tensor) -> Tensor:
        return -0.5 * z.square().sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi)

    def randn(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator, device=device, dtype=dtype)

    def rand(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=generator, device=device, dtype=dtype)

    beta = sigmoid_schedule(steps).tolist()
    z = randn(rows, model.prior_dim)  # exact samples of pi_0 = p(z)
    ll, grad_ll = log_lik_and_grad(z)
    log_w = torch.zeros(rows, dtype=ll.dtype, device=device)
    eps = torch.full((rows, 1), float(step_size), dtype=dtype, device=device)
    for t in range(1, steps + 1):
        log_w += (beta[t] - beta[t - 1]) * ll
        if t == steps:
            break  # a transition at beta = 1 would not change the weights
        b = beta[t]

        # HMC on U(z) = -log p(z) - b log p(x | z), whose gradient is z - b grad_ll. The
        # step is jittered around eps, independently of z (so pi_t stays invariant): a
        # fixed trajectory length can resonate with the target's scale (returning
        # near its start, or reflecting about the mean) and then barely mix.
        h = eps * (1 + JITTER * (2 * rand(rows, 1) - 1))
        p0 = randn(rows, model.prior_dim)
        z_new, ll_new, grad_new = z, ll, grad_ll
        p = p0 - 0.5 * h * (z_new - b * grad_new)
        for i in range(leapfrog):
            z_new = z_new + h * p
            ll_new, grad_new = log_lik_and_grad(z_new)
            p = p - (1.0 if i < leapfrog - 1 else 0.5) * h * (z_new - b * grad_new)
        h_old = -log_prior(z) - b * ll + 0.5 * p0.square().sum(1)
        h_new = -log_prior(z_new) - b * ll_new + 0.5 * p.square().sum(1)
        log_accept = (h_old - h_new).clamp(max=0.0)
        # An exploded trajectory (inf or nan) is rejected, and counts as acceptance 0
        # below rather than turning the step size into nan.
        log_accept = torch.where(torch.isfinite(h_new), log_accept, -math.inf)
        accept = rand(rows).log() < log_accept
        z = torch.where(accept[:, None], z_new, z)
        ll = torch.where(accept, ll_new, ll)
        grad_ll = torch.where(accept[:, None], grad_new, grad_ll)

        # Larger steps where the chain accepts more often than the target, smaller where less.
        rate = log_accept.exp().to(dtype)[:, None]
        eps = (eps * torch.exp(ADAPT_RATE * (rate - TARGET_ACCEPT))).clamp(MIN_STEP, MAX_STEP)
    log_w = log_w.view(chains, n)
    return (torch.logsumexp(log_w, 0) - math.log(chains)).to(dtype)
