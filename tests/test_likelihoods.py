import pytest
import torch
from torch.distributions import Bernoulli as TorchBernoulli
from torch.distributions import Categorical as TorchCategorical

from mwvae.likelihoods import Bernoulli, Categorical, make_likelihood


def test_bernoulli_nll_sums_pixel_log_likelihoods():
    logits = torch.randn(4, 1, 28, 28, dtype=torch.float64)
    target = torch.rand(4, 1, 28, 28, dtype=torch.float64).round()
    expected = -TorchBernoulli(logits=logits).log_prob(target).flatten(1).sum(1)
    torch.testing.assert_close(Bernoulli().nll(logits, target), expected)
    torch.testing.assert_close(Bernoulli().mean(logits), logits.sigmoid())


def test_categorical_nll_and_probabilities():
    logits = torch.randn(6, 10, dtype=torch.float64)
    target = torch.randint(0, 10, (6,))
    expected = -TorchCategorical(logits=logits).log_prob(target)
    torch.testing.assert_close(Categorical().nll(logits, target), expected)
    torch.testing.assert_close(
        Categorical().mean(logits).sum(-1), torch.ones(6, dtype=torch.float64)
    )


def test_unknown_likelihood_lists_the_choices():
    with pytest.raises(ValueError, match="bernoulli"):
        make_likelihood("poisson")


def test_gaussian_nll_is_unit_variance_normal():
    from torch.distributions import Independent, Normal

    from mwvae.likelihoods import Gaussian

    mean, target = torch.randn(4, 7, dtype=torch.float64), torch.randn(4, 7, dtype=torch.float64)
    expected = -Independent(Normal(mean, torch.ones_like(mean)), 1).log_prob(target)
    torch.testing.assert_close(Gaussian().nll(mean, target), expected)


def test_laplace_nll_is_the_fixed_scale_laplace_density_and_its_mean_a_pixel():
    from torch.distributions import Laplace as TorchLaplace

    from mwvae.likelihoods import Laplace

    location = torch.randn(4, 3, 5, 5, dtype=torch.float64)
    target = torch.rand(4, 3, 5, 5, dtype=torch.float64)
    expected = -TorchLaplace(location, 0.75).log_prob(target).flatten(1).sum(1)
    assert Laplace.SCALE == 0.75 and make_likelihood("laplace").scale == 0.75
    torch.testing.assert_close(Laplace().nll(location, target), expected)
    scaled = -TorchLaplace(location, 0.1).log_prob(target).flatten(1).sum(1)
    torch.testing.assert_close(Laplace(scale=0.1).nll(location, target), scaled)
    mean = Laplace().mean(location)
    assert mean.min() >= 0 and mean.max() <= 1
    inside = (location >= 0) & (location <= 1)
    torch.testing.assert_close(mean[inside], location[inside])
