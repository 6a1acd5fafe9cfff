"""Diagonal Gaussian posteriors and the closed forms the models are built on.

Every function works per example: leading dimensions are batch dimensions and
the last one is the latent dimension, which the distances and divergences sum
over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

# Bounds on the log-variance keep exp() finite and the KL well defined when an
# encoder drifts; they are far outside what a healthy posterior uses.
LOGVAR_MIN, LOGVAR_MAX = -12.0, 8.0


def at_least_float32(x: Tensor) -> Tensor:
    """`x` in float32 if autocast gave it less (bf16, fp16), else as it is.
    Sums over the latent or the pixels and exponentials need float32: bf16's
    8-bit mantissa gets them visibly wrong."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


@dataclass(frozen=True)
class DiagGaussian:
    """N(mu, diag(exp(logvar)))."""

    mu: Tensor
    logvar: Tensor

    @classmethod
    def from_mean_std(cls, mu: Tensor, std: Tensor) -> DiagGaussian:
        return cls(mu, 2.0 * std.log())

    @classmethod
    def standard(cls, like: Tensor) -> DiagGaussian:
        """The prior N(0, I) with the shape, dtype and device of `like`."""
        zeros = torch.zeros_like(like)
        return cls(zeros, zeros)

    @property
    def std(self) -> Tensor:
        return (0.5 * self.logvar).exp()

    def rsample(self) -> Tensor:
        """A reparameterised sample, differentiable in mu and logvar."""
        return self.mu + self.std * torch.randn_like(self.mu)

    def sample_or_mean(self, sample: bool) -> Tensor:
        return self.rsample() if sample else self.mu

    def log_prob(self, z: Tensor) -> Tensor:
        """log q(z), summed over the latent dimension."""
        return -0.5 * (
            (z - self.mu).square() * (-self.logvar).exp() + self.logvar + math.log(2 * math.pi)
        ).sum(-1)


def kl_to_standard_normal(q: DiagGaussian) -> Tensor:
    """KL(q || N(0, I)) per example."""
    return 0.5 * (q.mu.square() + q.logvar.exp() - 1.0 - q.logvar).sum(-1)


def kl_divergence(q: DiagGaussian, p: DiagGaussian) -> Tensor:
    """KL(q || p) between diagonal Gaussians, per example."""
    return 0.5 * (
        p.logvar - q.logvar + (q.logvar.exp() + (q.mu - p.mu).square()) * (-p.logvar).exp() - 1.0
    ).sum(-1)


def product_of_experts(
    experts: list[DiagGaussian], prior_expert: bool = True, masks: list[Tensor | None] | None = None
) -> DiagGaussian:
    """The (renormalised) product of Gaussian experts: precisions add and the
    mean is the precision-weighted mean. With `prior_expert`, N(0, I) is one
    of the experts (Wu & Goodman 2018), so the product is never wider than
    the prior. `masks` (one per expert, per example; None: every example)
    leave an expert out of the examples where it is False."""
    precisions = [
        _where_example((-q.logvar).exp(), mask, 0.0)
        for q, mask in zip(experts, masks or [None] * len(experts), strict=True)
    ]
    precision = sum(precisions)
    weighted_mu = sum(p * q.mu for p, q in zip(precisions, experts, strict=True))
    if prior_expert:
        precision = precision + 1.0
    return DiagGaussian(weighted_mu / precision, -precision.log())


def _where_example(values: Tensor, mask: Tensor | None, other: float) -> Tensor:
    """`values` where the example's mask is set, `other` elsewhere (None: everywhere)."""
    return values if mask is None else torch.where(mask.unsqueeze(-1), values, other)


def w2_squared(p: DiagGaussian, q: DiagGaussian) -> Tensor:
    """Squared 2-Wasserstein distance between diagonal Gaussians, per example.

    For commuting covariances the trace term of the paper's Eq. (6) reduces to
    ||sigma_p - sigma_q||^2. Eq. (6) prints the mean term without its square;
    the distance is the squared norm, as used here.
    """
    return (p.mu - q.mu).square().sum(-1) + (p.std - q.std).square().sum(-1)


def barycenter(
    posteriors: list[DiagGaussian], masks: list[Tensor | None] | None = None
) -> DiagGaussian:
    """The W2 barycenter (equal weights) of diagonal Gaussians: mean of the
    means and mean of the standard deviations. With `masks` (one per
    posterior, per example; None: every example), of the posteriors each
    example has; N(0, I) for an example that has none."""
    if len(posteriors) == 1:
        return posteriors[0]
    mu = mean_of_present([q.mu for q in posteriors], masks)
    std = mean_of_present([q.std for q in posteriors], masks)
    if masks is not None and any(mask is not None for mask in masks):
        std = torch.where(
            count_present(masks).unsqueeze(-1) > 0, std, 1.0
        )  # no posterior: the prior
    return DiagGaussian.from_mean_std(mu, std)


def mean_of_present(values: list[Tensor], masks: list[Tensor | None] | None = None) -> Tensor:
    """The mean of `values` (per example, over those its masks keep; 0 where none)."""
    if masks is None or all(mask is None for mask in masks):
        return torch.stack(values).mean(0)
    kept = [_where_example(v, k, 0.0) for v, k in zip(values, masks, strict=True)]
    # The mean over all, rescaled to the mean over those kept (by exactly 1 when all are).
    rescale = len(values) / count_present(masks).clamp(min=1).unsqueeze(-1)
    return torch.stack(kept).mean(0) * rescale


def count_present(masks: list[Tensor | None]) -> Tensor | int:
    """How many of the masks each example is in (None: every example); an
    int when no mask is a tensor."""
    like = next((mask for mask in masks if mask is not None), None)
    if like is None:
        return len(masks)
    return sum(torch.ones_like(like, dtype=torch.long) if k is None else k.long() for k in masks)


def w2_to_barycenter(
    posteriors: list[DiagGaussian], masks: list[Tensor | None] | None = None
) -> Tensor:
    """sum_m W2^2(q_m, q_bar), per example: the barycenter alignment of the
    paper's Sec. 6.1, linear in the number of posteriors M. For M = 2 it is
    half of W2^2(q_1, q_2). With `masks`, over the posteriors each example has."""
    center = barycenter(posteriors, masks)
    masks = masks or [None] * len(posteriors)
    return sum(
        w2_squared(q, center) if k is None else torch.where(k, w2_squared(q, center), 0.0)
        for q, k in zip(posteriors, masks, strict=True)
    )


def mean_pairwise_w2_squared(
    posteriors: list[DiagGaussian], masks: list[Tensor | None] | None = None
) -> Tensor:
    """Mean of W2^2 over all pairs of posteriors, per example, in O(M).

    Diagonal Gaussians embed isometrically in (mu, sigma) space, where
    sum_{i<j} ||a_i - a_j||^2 = M * sum_m ||a_m - a_bar||^2. Dividing by the
    M (M - 1) / 2 pairs gives 2 / (M - 1) * sum_m W2^2(q_m, q_bar): for M = 2
    this is exactly W2^2(q_1, q_2), the paper's alignment term. With `masks`
    (one per posterior, per example; None: every example), over the pairs an
    example has, and 0 for an example with fewer than two posteriors.
    """
    m = len(posteriors)
    if m < 2:
        raise ValueError("alignment needs at least two posteriors")
    if masks is None or all(mask is None for mask in masks):
        return 2.0 / (m - 1) * w2_to_barycenter(posteriors)
    count = count_present(masks)
    # clamp: 2 / 0 would make the gradient of the unused branch NaN
    pairs = 2.0 / (count - 1).clamp(min=1) * w2_to_barycenter(posteriors, masks)
    return torch.where(count >= 2, pairs, 0.0)
