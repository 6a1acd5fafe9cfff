"""The Frechet distance against scipy's matrix square root, and the
classifier's embedding it reads."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from mwvae.evaluation.classifier import Classifier
from mwvae.evaluation.frechet import (
    features_distance,
    frechet_distance,
    gaussian_fit,
    psd_sqrt,
    trace_sqrt_product,
)


def random_covariance(d: int, generator: torch.Generator, rank: int | None = None) -> torch.Tensor:
    a = torch.randn(d, rank or 2 * d, generator=generator, dtype=torch.float64)
    return a @ a.T / a.shape[1]


def scipy_distance(mu1, s1, mu2, s2) -> float:
    root = scipy.linalg.sqrtm(s1.numpy() @ s2.numpy())
    root = np.real(root)  # imaginary parts are rounding
    diff = (mu1 - mu2).numpy()
    return float(diff @ diff + np.trace(s1.numpy() + s2.numpy() - 2 * root))


@pytest.mark.parametrize("d", [2, 16, 128])
def test_the_trace_of_the_square_root_matches_scipy(d):
    generator = torch.Generator().manual_seed(d)
    for _ in range(3):
        s1, s2 = random_covariance(d, generator), random_covariance(d, generator)
        expected = np.trace(np.real(scipy.linalg.sqrtm(s1.numpy() @ s2.numpy())))
        assert trace_sqrt_product(s1, s2).item() == pytest.approx(expected, rel=1e-8)
        mu1, mu2 = torch.randn(2, d, generator=generator, dtype=torch.float64)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(
            scipy_distance(mu1, s1, mu2, s2), rel=1e-7, abs=1e-8
        )


def test_psd_sqrt_squares_back_and_survives_singular_matrices():
    generator = torch.Generator().manual_seed(0)
    s = random_covariance(10, generator, rank=3)  # rank 3: seven eigenvalues ~ 0, some < 0
    root = psd_sqrt(s)
    torch.testing.assert_close(root @ root, s, atol=1e-10, rtol=0)
    assert frechet_distance(torch.zeros(10), s, torch.zeros(10), s) == pytest.approx(0, abs=1e-6)


def test_distance_is_zero_to_itself_and_grows_with_a_shift():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2000, 32, generator=generator) @ torch.randn(32, 32, generator=generator)
    assert abs(features_distance(x, x)) < 1e-6
    distances = [features_distance(x, x + shift) for shift in (0.5, 1.0, 2.0)]
    # The same covariance: the distance is exactly the squared shift of the mean.
    assert distances == pytest.approx([32 * 0.25, 32 * 1.0, 32 * 4.0], rel=1e-6)
    scaled = [features_distance(x, x * scale) for scale in (1.1, 1.5, 3.0)]
    assert 0 < scaled[0] < scaled[1] < scaled[2]


def test_gaussian_fit_is_the_mean_and_the_unbiased_covariance():
    x = torch.randn(500, 4, generator=torch.Generator().manual_seed(2))
    mean, covariance = gaussian_fit(x)
    assert mean.dtype == torch.float64
    torch.testing.assert_close(covariance, torch.from_numpy(np.cov(x.double().numpy().T)))


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 4, 4), (20,)])
def test_embed_is_the_penultimate_layer_and_adds_no_parameters(shape):
    torch.manual_seed(0)
    classifier = Classifier(shape, 10).eval()
    keys = set(classifier.state_dict())
    x = torch.rand(7, *shape)
    features = classifier.embed(x, batch_size=3)
    assert features.shape == (7, 128) and (features >= 0).all()  # after the ReLU
    torch.testing.assert_close(classifier.head[-1](features), classifier(x))
    assert set(classifier.state_dict()) == keys
