import numpy as np
import pytest
import torch
from scipy.linalg import sqrtm
from torch.distributions import Independent, Normal, kl_divergence

from mwvae.gaussians import (
    DiagGaussian,
    barycenter,
    kl_to_standard_normal,
    mean_pairwise_w2_squared,
    w2_squared,
)


def random_gaussian(generator, batch=5, dim=4) -> DiagGaussian:
    mu = torch.randn(batch, dim, generator=generator, dtype=torch.float64)
    logvar = torch.randn(batch, dim, generator=generator, dtype=torch.float64)
    return DiagGaussian(mu, logvar)


def w2_squared_general(mu1, cov1, mu2, cov2) -> float:
    """Gelbrich's formula for arbitrary covariances, computed with sqrtm."""
    root1 = sqrtm(cov1)
    cross = sqrtm(root1 @ cov2 @ root1)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1 + cov2 - 2 * np.real(cross)))


def test_w2_matches_general_covariance_formula():
    generator = torch.Generator().manual_seed(0)
    p, q = random_gaussian(generator), random_gaussian(generator)
    ours = w2_squared(p, q)
    for i in range(len(ours)):
        expected = w2_squared_general(
            p.mu[i].numpy(),
            np.diag(p.logvar[i].exp().numpy()),
            q.mu[i].numpy(),
            np.diag(q.logvar[i].exp().numpy()),
        )
        assert ours[i].item() == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_w2_squares_the_mean_difference():
    # Eq. (6) of the paper prints ||mu1 - mu2|| unsquared; the distance squares it.
    zero = torch.zeros(1, 3)
    p = DiagGaussian(zero, zero)
    q = DiagGaussian(torch.full((1, 3), 2.0), zero)
    assert w2_squared(p, q).item() == pytest.approx(12.0)


def test_kl_matches_torch_distributions():
    generator = torch.Generator().manual_seed(1)
    q = random_gaussian(generator)
    expected = kl_divergence(
        Independent(Normal(q.mu, q.std), 1),
        Independent(Normal(torch.zeros_like(q.mu), torch.ones_like(q.mu)), 1),
    )
    torch.testing.assert_close(kl_to_standard_normal(q), expected)


def test_log_prob_matches_torch_distributions():
    generator = torch.Generator().manual_seed(2)
    q = random_gaussian(generator)
    z = torch.randn(q.mu.shape, generator=generator, dtype=torch.float64)
    expected = Independent(Normal(q.mu, q.std), 1).log_prob(z)
    torch.testing.assert_close(q.log_prob(z), expected)


def test_mean_pairwise_w2_equals_direct_pairwise_mean():
    generator = torch.Generator().manual_seed(3)
    for m in (2, 3, 5):
        qs = [random_gaussian(generator) for _ in range(m)]
        pairs = [w2_squared(qs[i], qs[j]) for i in range(m) for j in range(i + 1, m)]
        torch.testing.assert_close(mean_pairwise_w2_squared(qs), torch.stack(pairs).mean(0))


def test_barycenter_minimises_the_sum_of_w2():
    generator = torch.Generator().manual_seed(4)
    qs = [random_gaussian(generator, batch=1) for _ in range(3)]
    center = barycenter(qs)

    def cost(c: DiagGaussian) -> float:
        return sum(w2_squared(q, c) for q in qs).item()

    best = cost(center)
    for _ in range(20):
        shifted = DiagGaussian(
            center.mu
            + 0.05 * torch.randn(center.mu.shape, generator=generator, dtype=torch.float64),
            center.logvar
            + 0.05 * torch.randn(center.mu.shape, generator=generator, dtype=torch.float64),
        )
        assert cost(shifted) > best


def test_barycenter_of_one_posterior_is_itself():
    generator = torch.Generator().manual_seed(5)
    q = random_gaussian(generator)
    assert barycenter([q]) is q
