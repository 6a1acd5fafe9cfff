"""The likelihood estimator against probabilistic PCA, whose log-likelihood
is known in closed form: x = W z + b + noise, z ~ N(0, I), noise ~ N(0, I)
gives p(x) = N(b, W W^T + I)."""

from __future__ import annotations

import torch
from torch.distributions import MultivariateNormal

from mwvae.evaluation.likelihood import importance_log_likelihood
from mwvae.models import VAE

OBS, LATENT, N = 5, 3, 200


def ppca_model():
    torch.manual_seed(0)
    spec = {
        "encoder": {"_target_": "tests.evaluation.linear.LinearEncoder", "in_features": OBS},
        "decoder": {"_target_": "mwvae.nets.MLPDecoder", "hidden_dims": [], "output_shape": [OBS]},
        "likelihood": "gaussian",
    }
    model = VAE({"x": spec}, LATENT, modality="x").double().eval()
    decoder = model.decoders["x"].net[0]
    w, b = decoder.weight, decoder.bias  # W: (OBS, LATENT)
    # The exact posterior is N(S W^T (x - b), S) with S = (I + W^T W)^-1. The
    # proposal gets its mean right but the diagonal of S inflated 1.5x, so a
    # single sample gives a loose bound.
    s = torch.linalg.inv(torch.eye(LATENT, dtype=w.dtype) + w.T @ w)
    encoder = model.encoders["x"]
    with torch.no_grad():
        encoder.mean.weight.copy_(s @ w.T)
        encoder.mean.bias.copy_(-(s @ w.T) @ b)
        encoder.logvar.copy_((1.5 * s.diagonal()).log())
    exact = MultivariateNormal(
        b.detach(), w.detach() @ w.detach().T + torch.eye(OBS, dtype=w.dtype)
    )
    return model, exact


def test_k_1000_estimate_is_within_half_a_nat_of_the_exact_log_likelihood():
    model, exact = ppca_model()
    x = exact.sample((N,))
    torch.manual_seed(1)
    estimate = importance_log_likelihood(model, {"x": x}, ["x"], k=1000)
    truth = exact.log_prob(x)
    assert (estimate - truth).abs().max() < 0.5
    assert (estimate - truth).mean().abs() < 0.05


def test_estimate_does_not_decrease_on_average_as_k_grows():
    model, exact = ppca_model()
    x = exact.sample((10 * N,))
    means, errors = [], []
    for k in (1, 10, 100, 1000):
        torch.manual_seed(2)
        estimate = importance_log_likelihood(model, {"x": x}, ["x"], k=k)
        gap = estimate - exact.log_prob(x)  # removes the spread of log p(x) itself
        means.append(estimate.mean().item())
        errors.append(gap.std().item() / len(x) ** 0.5)
    for i in range(3):  # each step up in K: no decrease beyond Monte Carlo noise
        assert means[i + 1] >= means[i] - 3 * (errors[i] + errors[i + 1])
    assert means[-1] - means[0] > 0.05  # the one-sample bound really was loose
    assert means[-1] <= exact.log_prob(x).mean().item() + 0.05


def test_every_model_estimates_joint_and_marginal_likelihoods():
    import pytest

    from mwvae.models import FMWVAE, JMVAE, MMVAE, MWVAE, JointMVAE, MoPoE, MVAEPoE

    from ..models.tiny import make_batch, make_model

    batch = make_batch()
    for model_class in (JointMVAE, MWVAE, MVAEPoE, FMWVAE, JMVAE, MMVAE, MoPoE):
        model = make_model(model_class).eval()
        for scored in (["image", "label"], ["image"], ["label"]):
            if not model.can_infer_from(scored):
                continue
            estimate = importance_log_likelihood(model, batch, scored, k=50, k_chunk=20)
            assert estimate.shape == (5,) and torch.isfinite(estimate).all(), model_class
            assert (estimate < 0).all()  # binary pixels and classes: probabilities below 1
        with pytest.raises(KeyError):
            importance_log_likelihood(model, batch, ["caption"], k=2)
