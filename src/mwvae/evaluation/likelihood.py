"""Log-likelihood estimates of every observed subset of modalities, with their error.

Importance sampling (Burda et al. 2016) with one proposal per example for
every subset S of its observed modalities X:

    log p(x_S) ~ logsumexp_k [log p(x_S | z_k) + log p(z_k) - log q(z_k | X)] - log K.

Any q with full support gives an unbiased estimate of p(x_S), whatever it
conditions on; what matters is that it covers the posterior p(z | x_S). The
proposal is a defensive mixture (Hesterberg 1995) of every Gaussian the model
offers for X (`proposal_components`: each unimodal posterior, the fused one,
the subsets' products for MoPoE), each also 1.25x wider, with weight
1 - `prior_weight` shared equally, and the prior N(0, I) with `prior_weight`. A model's own posterior
alone is often far too narrow: a label's q(z | y) covers a sliver of what
p(z | y) covers, and estimates of log p(y) came out 3 nats low at K = 1000.

The K draws are stratified: each component gets a fixed share of them (the
deterministic mixture, or balance heuristic, of Veach & Guibas 1995), which
stays unbiased with the mixture density in the weights and varies less than
drawing components at random. The same draws score every subset (common
random numbers), so for bounded likelihoods (classes, pixels) an example's
joint estimate is never above its marginal ones by Monte Carlo noise.

`likelihood_metrics` reports per subset the mean over examples, its standard
error, and the mean effective sample size of the weights as a fraction of K,
warning when an example's falls below 1% of K; conditionals
log p(x_t | x_rest) are per-example differences of two such estimates (an
estimate, with the standard error of the differences). `method="ais"` uses
annealed importance sampling instead (`mwvae.evaluation.ais`), to check the
importance estimates. Likelihood weights of the training objective are not
applied: these are log-densities, in nats.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from rich.progress import track
from torch import Tensor

from mwvae.data.loader import InMemoryLoader
from mwvae.evaluation.ais import ais_log_likelihood
from mwvae.evaluation.settings import METHODS, LikelihoodSettings
from mwvae.gaussians import DiagGaussian
from mwvae.models.base import Batch, MultimodalVAE, nonempty_subsets

log = logging.getLogger(__name__)

PRIOR_WEIGHT = 0.1  # the defensive mixture's share of draws from the prior
# Each offered posterior enters the mixture once per scale of its standard
# deviation: as it is and 1.25x wider, covering the tails over-confident
# encoders miss (on the `make train` checkpoint, K = 1000: log p(x) 0.60 nats
# below a K = 20,000 reference without the wider copies, 0.18 with 1.25x, 0.23 with 1.5x).
WIDER = 1.25
SCALES = (1.0, WIDER)
LOW_ESS = 0.01  # warn below this effective sample size, as a fraction of K


@dataclass(frozen=True)
class Estimate:
    """Per example: the estimate of log p(x_S) and the effective sample size
    (sum w)^2 / sum w^2 of its K importance weights (None for AIS)."""

    log_p: Tensor
    ess: Tensor | None = None


def subset_name(subset: Sequence[str], modalities: Sequence[str]) -> str:
    """`joint` for every modality, else the subset's names joined by `+`."""
    if set(subset) == set(modalities) and len(modalities) > 1:
        return "joint"
    return "+".join(m for m in modalities if m in subset)


def inferable_subsets(model: MultimodalVAE, names: Sequence[str]) -> list[tuple[str, ...]]:
    """The non-empty subsets of `names` the model has a posterior for."""
    return [s for s in nonempty_subsets(list(names)) if model.can_infer_from(s)]


def prior_draws(k: int, prior_weight: float) -> int:
    """How many of K draws the prior gets: its share, at least one."""
    return max(1, round(prior_weight * k)) if prior_weight > 0 else 0


def draws_needed(num_modalities: int, prior_weight: float = PRIOR_WEIGHT) -> int:
    """The smallest K for any model of that many modalities: one draw per
    mixture component (at most every subset's posterior, each also widened)
    beside the prior's share (7 for 2 modalities, 16 for 3, 69 for 5)."""
    components = len(SCALES) * (2**num_modalities - 1)
    k = components + 1
    while k - prior_draws(k, prior_weight) < components:
        k += 1
    return k


def stratified_counts(k: int, num_components: int, prior_weight: float) -> list[int]:
    """Draws per component (the prior last): the prior's share, the rest equal."""
    prior = prior_draws(k, prior_weight)
    base, extra = divmod(k - prior, num_components)
    counts = [base + (i < extra) for i in range(num_components)] + [prior]
    if min(counts[:num_components]) < 1:
        raise ValueError(f"k={k} is too small for a mixture of {num_components} components")
    return counts


def mixture_log_prob(z: Tensor, mus: Tensor, logvars: Tensor, log_alpha: Tensor) -> Tensor:
    """log sum_c alpha_c N(z; mu_c, diag exp(logvar_c)) for z of shape (n, N, D)
    and components (C, N, D): shape (n, N)."""
    diff = z.unsqueeze(1) - mus  # (n, C, N, D)
    log_probs = -0.5 * (diff.square() * (-logvars).exp() + logvars + math.log(2 * math.pi)).sum(-1)
    return torch.logsumexp(log_probs + log_alpha.view(1, -1, 1), 1)


@torch.no_grad()
def estimate_log_likelihoods(
    model: MultimodalVAE,
    batch: Batch,
    subsets: Iterable[Sequence[str]] | None = None,
    k: int = LikelihoodSettings.k,
    k_chunk: int = 100,
    prior_weight: float = PRIOR_WEIGHT,
    generator: torch.Generator | None = None,
) -> dict[tuple[str, ...], Estimate]:
    """Per example of `batch` (complete examples of the modalities it holds),
    the K-sample importance estimate of log p(x_S) for every subset S (by
    default every subset the model can infer from), all from the same draws
    of the defensive mixture proposal. Keys are the subsets as tuples in the
    model's modality order."""
    observed = {m: batch[m] for m in model.modality_names if m in batch}
    if not observed:
        raise KeyError(f"the batch holds none of the model's modalities {model.modality_names}")
    order = {m: i for i, m in enumerate(model.modality_names)}
    wanted = inferable_subsets(model, list(observed)) if subsets is None else subsets
    wanted = [tuple(sorted(s, key=lambda m: order.get(m, -1))) for s in wanted]
    for subset in wanted:
        missing = [m for m in subset if m not in observed]
        if missing:
            raise KeyError(f"cannot score {missing}: the batch has {sorted(observed)}")
    offered = model.proposal_components(observed)
    components = [
        DiagGaussian(q.mu, q.logvar + 2 * math.log(scale)) for scale in SCALES for q in offered
    ]
    prior = DiagGaussian.standard(components[0].mu)
    mus = torch.stack([q.mu for q in components] + [prior.mu])
    logvars = torch.stack([q.logvar for q in components] + [prior.logvar])
    counts = stratified_counts(k, len(components), prior_weight)
    device = mus.device
    assignment = torch.repeat_interleave(
        torch.arange(len(counts), device=device), torch.tensor(counts, device=device)
    )
    log_alpha = torch.tensor(counts, dtype=mus.dtype, device=device).div(k).log()
    scored = [m for m in model.modality_names if any(m in s for s in wanted)]
    log_weights: dict[tuple[str, ...], list[Tensor]] = {s: [] for s in wanted}
    for start in range(0, k, k_chunk):
        chosen = assignment[start : start + k_chunk]
        noise = torch.randn(
            len(chosen), *mus.shape[1:], generator=generator, device=device, dtype=mus.dtype
        )
        z = mus[chosen] + (0.5 * logvars[chosen]).exp() * noise  # (n, N, D)
        base = prior.log_prob(z) - mixture_log_prob(z, mus, logvars, log_alpha)
        outputs = model.decode(z.flatten(0, 1), scored)
        log_lik = {}
        for m in scored:
            target = observed[m].unsqueeze(0).expand(len(chosen), *observed[m].shape)
            nll = model.likelihoods[m].nll(outputs[m], target.flatten(0, 1))
            log_lik[m] = -nll.view(len(chosen), -1)
        for subset in wanted:
            log_weights[subset].append(base + sum(log_lik[m] for m in subset))
    estimates = {}
    for subset, parts in log_weights.items():
        log_w = torch.cat(parts)
        total = torch.logsumexp(log_w, 0)
        ess = (2 * total - torch.logsumexp(2 * log_w, 0)).exp()
        estimates[subset] = Estimate(total - math.log(k), ess)
    return estimates


def ais_estimates(
    model: MultimodalVAE,
    batch: Batch,
    subsets: Iterable[Sequence[str]],
    generator: torch.Generator | None = None,
    **options: Any,
) -> dict[tuple[str, ...], Estimate]:
    """`estimate_log_likelihoods`'s result, by annealed importance sampling
    (one run per subset; `options` go to `ais_log_likelihood`)."""
    return {
        tuple(s): Estimate(
            ais_log_likelihood(model, batch, list(s), generator=generator, **options)
        )
        for s in subsets
    }


def mean_and_error(values: Tensor) -> tuple[float, float]:
    """The mean over examples and its standard error."""
    values = values.double()
    error = values.std().item() / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return values.mean().item(), error


def likelihood_metrics(
    model: MultimodalVAE,
    split: dict[str, Tensor],
    k: int = LikelihoodSettings.k,
    num_samples: int = LikelihoodSettings.num_samples,
    batch_size: int = LikelihoodSettings.batch_size,
    method: str = LikelihoodSettings.method,
    ais: dict[str, Any] | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """`loglik/<subset>`, `loglik_se/<subset>` and (importance sampling)
    `loglik_ess/<subset>` on the first `num_samples` examples of `split`, for
    every subset the model can infer from, and `loglik/<t>_given_<rest>`
    (with `loglik_se/...`) for each modality t whose complement is scored."""
    if num_samples == 0:  # switched off (evaluation.likelihood.num_samples=0)
        return {}
    if method not in METHODS:
        raise ValueError(f"evaluation.likelihood.method={method!r}; choose one of {list(METHODS)}")
    names = [m for m in model.modality_names if m in split]
    subsets = inferable_subsets(model, names)
    generator = torch.Generator(model.device).manual_seed(seed)
    parts: dict[tuple[str, ...], list[Estimate]] = {s: [] for s in subsets}
    rows = {m: t[:num_samples] for m, t in split.items() if m in names}
    label = f"log-likelihoods of {len(subsets)} subsets, " + (
        f"K={k}" if method == "importance" else "AIS"
    )
    for batch in track(InMemoryLoader(rows, batch_size, device=model.device), description=label):
        if method == "importance":
            found = estimate_log_likelihoods(model, batch, subsets, k=k, generator=generator)
        else:
            found = ais_estimates(model, batch, subsets, generator=generator, **(ais or {}))
        for subset, estimate in found.items():
            parts[subset].append(estimate)
    per_example = {s: torch.cat([e.log_p for e in found]).cpu() for s, found in parts.items()}
    metrics = {}
    for subset, values in per_example.items():
        name = subset_name(subset, names)
        metrics[f"loglik/{name}"], metrics[f"loglik_se/{name}"] = mean_and_error(values)
        if method == "importance":
            ess = torch.cat([e.ess for e in parts[subset]]).cpu() / k
            metrics[f"loglik_ess/{name}"] = ess.mean().item()
            low = int((ess < LOW_ESS).sum())
            if low:
                log.warning(
                    "log p(%s): %d of %d examples have an effective sample size below %d%% "
                    "of K=%d (smallest %.2f%%); the estimate may be loose: raise "
                    "evaluation.likelihood.k or check with method=ais",
                    name, low, len(ess), round(100 * LOW_ESS), k, 100 * ess.min().item(),
                )  # fmt: skip
    everything = tuple(names)
    for target in names:
        rest = tuple(m for m in names if m != target)
        if len(names) > 1 and everything in per_example and rest in per_example:
            key = f"{target}_given_{subset_name(rest, names)}"
            difference = per_example[everything] - per_example[rest]
            metrics[f"loglik/{key}"], metrics[f"loglik_se/{key}"] = mean_and_error(difference)
    return metrics
