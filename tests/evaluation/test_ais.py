"""Annealed importance sampling against exact log-likelihoods: probabilistic
PCA's closed form (see `ppca_model`), and quadrature over a 2-D latent for a
nonlinear Bernoulli decoder, whose posteriors are not Gaussian."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mwvae.evaluation.ais import ais_log_likelihood, sigmoid_schedule
from mwvae.models import VAE

from .test_likelihood import ppca_model


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def ais_errors(n: int, seed: int, **options) -> torch.Tensor:
    """AIS minus exact log p(x), for n samples of the PPCA model."""
    model, exact = ppca_model()
    x = exact.sample((n,))
    estimate = ais_log_likelihood(model, {"x": x}, ["x"], generator=seeded(seed), **options)
    assert estimate.shape == (n,) and estimate.dtype == torch.float64
    return estimate - exact.log_prob(x)


def test_schedule_is_sigmoidal_from_exactly_0_to_exactly_1():
    beta = sigmoid_schedule(100)
    assert len(beta) == 101 and beta[0] == 0 and beta[-1] == 1
    steps = beta.diff()
    assert (steps > 0).all()
    assert steps[0] < steps[50] / 10 and steps[-1] < steps[50] / 10  # dense at both ends


def test_estimate_is_within_a_third_of_a_nat_of_the_exact_log_likelihood():
    # Tolerances: over 10 data and chain seeds this setting's worst per-example
    # error was 0.10 nats and its worst mean error 0.007 (the spread of the log
    # of a 16-chain average), so 0.3 and 0.1 leave a 3x and a 10x margin, while
    # a broken weight update or transition is off by far more.
    errors = ais_errors(50, seed=0, steps=200, leapfrog=5, chains=16)
    assert errors.abs().max() < 0.3
    assert errors.mean().abs() < 0.1


def test_more_annealing_steps_tighten_the_bound():
    # One chain: the log of each weight is itself the estimate, a lower bound
    # on average (Jensen). Measured over 5 seeds of 200 examples: 5 steps were
    # 0.7 to 1.1 nats low on average (mean |error| about 1.4), 200 steps within
    # 0.03 (mean |error| about 0.09).
    few = ais_errors(200, seed=1, steps=5, leapfrog=5, chains=1)
    many = ais_errors(200, seed=1, steps=200, leapfrog=5, chains=1)
    assert many.mean() > few.mean() + 0.2
    assert many.abs().mean() < 0.3 * few.abs().mean()
    assert many.mean() < 0.05  # still no higher than the truth beyond noise


def bernoulli_2d_model(pixels: int = 12, scale: float = 3.0) -> VAE:
    """A 2-D latent decoded by a one-hidden-layer MLP into `pixels` Bernoulli
    pixels, its weights scaled up so that posteriors are sharp and skewed."""
    torch.manual_seed(0)
    spec = {
        "encoder": {"_target_": "tests.evaluation.linear.LinearEncoder", "in_features": pixels},
        "decoder": {
            "_target_": "mwvae.nets.MLPDecoder",
            "hidden_dims": [16],
            "output_shape": [pixels],
        },
        "likelihood": "bernoulli",
    }
    model = VAE({"x": spec}, 2, modality="x").double().eval()
    with torch.no_grad():
        for p in model.decoders["x"].parameters():
            p.mul_(scale)
    return model


def quadrature_log_likelihood(model: VAE, x: torch.Tensor, half: float = 6.0, n: int = 301):
    """log p(x) by a Riemann sum on an n x n grid over [-half, half]^2 (the
    prior's mass outside is 1e-8; a finer or wider grid moves it by < 1e-4)."""
    g = torch.linspace(-half, half, n, dtype=torch.float64)
    z = torch.cartesian_prod(g, g)
    with torch.no_grad():
        logits = model.decode(z, ["x"])["x"]
    log_lik = x @ logits.T - F.softplus(logits).sum(1)  # (examples, grid points)
    log_prior = -0.5 * z.square().sum(1) - math.log(2 * math.pi)
    return torch.logsumexp(log_lik + log_prior, 1) + 2 * (g[1] - g[0]).log()


def test_estimate_agrees_with_quadrature_for_a_nonlinear_decoder():
    # Here leapfrog errors are large enough that a wrong accept/reject step
    # shows: always accepting was 0.7 nats low on average, and an MH ratio with
    # the wrong temperature 0.24. Over 10 seeds this setting's worst mean error
    # was 0.015 and its worst per-example error 0.27.
    model = bernoulli_2d_model()
    torch.manual_seed(1)
    with torch.no_grad():
        z = torch.randn(50, 2, dtype=torch.float64)
        x = torch.bernoulli(model.decode(z, ["x"])["x"].sigmoid())
    estimate = ais_log_likelihood(
        model, {"x": x}, ["x"], steps=200, leapfrog=5, chains=16, generator=seeded(0)
    )
    errors = estimate - quadrature_log_likelihood(model, x)
    assert errors.abs().max() < 0.5
    assert errors.mean().abs() < 0.1


def test_a_seeded_generator_repeats_and_parameters_get_no_gradients():
    model, exact = ppca_model()
    x = exact.sample((10,))
    runs = [
        ais_log_likelihood(model, {"x": x}, ["x"], steps=20, leapfrog=3, chains=4, generator=g)
        for g in (seeded(5), seeded(5), seeded(6))
    ]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])
    assert all(p.grad is None for p in model.parameters())
    assert not model.training

    # Without a generator: the global RNG.
    again = []
    for _ in range(2):
        torch.manual_seed(7)
        again.append(ais_log_likelihood(model, {"x": x}, ["x"], steps=5, leapfrog=2, chains=2))
    assert torch.equal(again[0], again[1])


def test_a_step_size_that_explodes_is_recovered_from():
    # Steps of 1e30 overflow to inf, of 1e100 to nan, within a few leapfrog
    # steps: those proposals must be rejected without poisoning the chains or
    # their step sizes, which then adapt back into range and anneal as usual.
    for step_size in (1e30, 1e100):
        errors = ais_errors(20, seed=2, steps=100, leapfrog=5, chains=16, step_size=step_size)
        assert errors.abs().max() < 0.3, step_size


def test_a_multimodal_model_scores_images_and_labels():
    from mwvae.models import MWVAE

    from ..models.tiny import make_batch, make_model

    model = make_model(MWVAE).eval()
    batch = make_batch()
    for scored in (["image", "label"], ["label"]):
        estimate = ais_log_likelihood(
            model, batch, scored, steps=10, leapfrog=2, chains=3, generator=seeded(0)
        )
        assert estimate.shape == (5,) and estimate.dtype == torch.float32
        assert torch.isfinite(estimate).all() and (estimate < 0).all()  # probabilities below 1
    assert all(p.grad is None for p in model.parameters()) and not model.training


def test_bad_arguments_are_refused():
    model, exact = ppca_model()
    batch = {"x": exact.sample((3,))}
    for bad in ({"steps": 0}, {"leapfrog": 0}, {"chains": 0}, {"step_size": 0.0}):
        name = next(iter(bad))
        with pytest.raises(ValueError, match=name):
            ais_log_likelihood(model, batch, ["x"], **bad)
    with pytest.raises(ValueError, match="at least one"):
        ais_log_likelihood(model, batch, [])
    with pytest.raises(ValueError, match="'y' is not a modality"):
        ais_log_likelihood(model, batch, ["y"])
    with pytest.raises(KeyError, match="'x'"):
        ais_log_likelihood(model, {}, ["x"])
