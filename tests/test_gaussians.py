import numpy as np
import pytest
import torch
from scipy.linalg import sqrtm
from scipy.optimize import minimize
from torch.distributions import Independent, Normal, kl_divergence

from mwvae.gaussians import (
    DiagGaussian,
    barycenter,
    kl_to_standard_normal,
    mean_pairwise_w2_squared,
    product_of_experts,
    w2_squared,
    w2_to_barycenter,
)
from mwvae.gaussians import kl_divergence as gaussian_kl


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


def test_product_of_experts_matches_numerical_product_of_densities():
    generator = torch.Generator().manual_seed(6)
    experts = [random_gaussian(generator, batch=1, dim=2) for _ in range(3)]
    product = product_of_experts(experts, prior_expert=True)
    grid = np.linspace(-12, 12, 200_001)
    for d in range(2):
        log_density = -0.5 * grid**2  # the prior expert
        for q in experts:
            mu, var = q.mu[0, d].item(), q.logvar[0, d].exp().item()
            log_density = log_density - 0.5 * (grid - mu) ** 2 / var
        weights = np.exp(log_density - log_density.max())
        weights /= weights.sum()
        mean = (weights * grid).sum()
        var = (weights * (grid - mean) ** 2).sum()
        assert product.mu[0, d].item() == pytest.approx(mean, abs=1e-6)
        assert product.logvar[0, d].exp().item() == pytest.approx(var, rel=1e-5)


def test_barycenter_matches_numerical_minimisation_of_summed_w2():
    generator = torch.Generator().manual_seed(7)
    dim = 2
    qs = [random_gaussian(generator, batch=1, dim=dim) for _ in range(3)]
    covs = [np.diag(q.logvar[0].exp().numpy()) for q in qs]

    def summed_w2(params: np.ndarray) -> float:
        mu, log_sigma = params[:dim], params[dim:]
        cov = np.diag(np.exp(2 * log_sigma))
        return sum(
            w2_squared_general(mu, cov, q.mu[0].numpy(), c) for q, c in zip(qs, covs, strict=True)
        )

    found = minimize(
        summed_w2,
        np.zeros(2 * dim),
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20_000},
    ).x
    center = barycenter(qs)
    np.testing.assert_allclose(center.mu[0].numpy(), found[:dim], atol=1e-4)
    np.testing.assert_allclose(center.std[0].numpy(), np.exp(found[dim:]), atol=1e-4)


def test_barycenter_alignment_is_half_the_pairwise_w2_for_two():
    generator = torch.Generator().manual_seed(8)
    p, q = random_gaussian(generator), random_gaussian(generator)
    torch.testing.assert_close(w2_to_barycenter([p, q]), w2_squared(p, q) / 2)


def test_kl_between_gaussians_matches_torch_distributions():
    generator = torch.Generator().manual_seed(9)
    p, q = random_gaussian(generator), random_gaussian(generator)
    expected = kl_divergence(
        Independent(Normal(q.mu, q.std), 1), Independent(Normal(p.mu, p.std), 1)
    )
    torch.testing.assert_close(gaussian_kl(q, p), expected)


def rows(q: DiagGaussian, i: int) -> DiagGaussian:
    return DiagGaussian(q.mu[i : i + 1], q.logvar[i : i + 1])


# Per example (5 of them), which of three posteriors it has: all, two, one, one, none.
PRESENT = [[0, 1, 2], [0, 2], [1], [2], []]


def masked(present=PRESENT, count=3) -> list[torch.Tensor]:
    return [torch.tensor([k in p for p in present]) for k in range(count)]


def test_masked_fusions_are_those_of_the_present_posteriors_per_example():
    generator = torch.Generator().manual_seed(5)
    qs = [random_gaussian(generator) for _ in range(3)]
    product = product_of_experts(qs, prior_expert=True, masks=masked())
    center = barycenter(qs, masks=masked())
    pairs = mean_pairwise_w2_squared(qs, masks=masked())
    for i, present in enumerate(PRESENT):
        kept = [rows(qs[k], i) for k in present]
        # Independently: the product of the kept densities and N(0, I), in closed form
        # from precisions; the barycenter as the minimiser is tested above.
        zeros = torch.zeros_like(rows(qs[0], i).mu)
        precision = 1.0 + sum(((-q.logvar).exp() for q in kept), zeros)
        mu = sum(((-q.logvar).exp() * q.mu for q in kept), zeros) / precision
        torch.testing.assert_close(product.mu[i : i + 1], mu)
        torch.testing.assert_close(product.logvar[i : i + 1], -precision.log())
        expected = barycenter(kept) if kept else DiagGaussian.standard(rows(qs[0], i).mu)
        torch.testing.assert_close(center.mu[i : i + 1], expected.mu)
        torch.testing.assert_close(center.logvar[i : i + 1], expected.logvar)
        w2 = [w2_squared(a, b) for j, a in enumerate(kept) for b in kept[j + 1 :]]
        torch.testing.assert_close(pairs[i : i + 1], torch.stack(w2).mean(0) if w2 else zeros[:, 0])


def test_every_mask_set_fuses_exactly_as_no_mask():
    generator = torch.Generator().manual_seed(6)
    qs = [random_gaussian(generator) for _ in range(3)]
    everyone = masked([[0, 1, 2]] * 5)
    for fuse in (product_of_experts, barycenter):
        plain, all_set = fuse(qs), fuse(qs, masks=everyone)
        assert torch.equal(plain.mu, all_set.mu) and torch.equal(plain.logvar, all_set.logvar)
    assert torch.equal(mean_pairwise_w2_squared(qs), mean_pairwise_w2_squared(qs, everyone))
