"""The likelihood estimator against probabilistic PCA, whose log-likelihood
is known in closed form (x = W z + b + noise, z ~ N(0, I), noise ~ N(0, I)
gives p(x) = N(b, W W^T + I)), against much larger K and against AIS on a
small trained model, and on every model."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import MultivariateNormal

from mwvae.evaluation.likelihood import (
    estimate_log_likelihoods,
    likelihood_metrics,
    stratified_counts,
    subset_name,
)
from mwvae.models import FMWVAE, JMVAE, MMVAE, MWVAE, VAE, JointMVAE, MoPoE, MVAEPoE

from ..models.tiny import MODALITIES3, make_batch, make_model

OBS, LATENT, N = 5, 3, 200


def ppca_model(inflate: float = 1.5):
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
    # proposal gets its mean right but the diagonal of S scaled by `inflate`,
    # so a single sample gives a loose bound.
    s = torch.linalg.inv(torch.eye(LATENT, dtype=w.dtype) + w.T @ w)
    encoder = model.encoders["x"]
    with torch.no_grad():
        encoder.mean.weight.copy_(s @ w.T)
        encoder.mean.bias.copy_(-(s @ w.T) @ b)
        encoder.logvar.copy_((inflate * s.diagonal()).log())
    exact = MultivariateNormal(
        b.detach(), w.detach() @ w.detach().T + torch.eye(OBS, dtype=w.dtype)
    )
    return model, exact


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def log_p(model, batch, subset, k, seed=0, **options):
    return estimate_log_likelihoods(model, batch, [subset], k=k, generator=seeded(seed), **options)[
        tuple(subset)
    ].log_p


def test_k_1000_estimate_is_within_half_a_nat_of_the_exact_log_likelihood():
    model, exact = ppca_model()
    x = exact.sample((N,))
    gap = log_p(model, {"x": x}, ["x"], k=1000) - exact.log_prob(x)
    assert gap.abs().max() < 0.5
    assert gap.mean().abs() < 0.05


def test_a_too_narrow_posterior_is_covered_by_the_defensive_mixture():
    # The encoder's variance 0.05x the true posterior's: the model's own
    # posterior as the proposal misses most of p(z | x); the prior component
    # keeps every weight bounded.
    model, exact = ppca_model(inflate=0.05)
    x = exact.sample((N,))
    gap = log_p(model, {"x": x}, ["x"], k=1000) - exact.log_prob(x)
    narrow_only = log_p(model, {"x": x}, ["x"], k=1000, prior_weight=0.0) - exact.log_prob(x)
    assert gap.mean().abs() < 0.1
    assert narrow_only.mean() < gap.mean() - 0.5  # what the posterior alone would report


def test_estimate_does_not_decrease_on_average_as_k_grows():
    model, exact = ppca_model()
    x = exact.sample((10 * N,))
    means, errors = [], []
    for k in (3, 10, 100, 1000):
        gap = log_p(model, {"x": x}, ["x"], k=k, seed=2) - exact.log_prob(x)
        means.append(gap.mean().item())
        errors.append(gap.std().item() / len(x) ** 0.5)
    for i in range(3):  # each step up in K: no decrease beyond Monte Carlo noise
        assert means[i + 1] >= means[i] - 3 * (errors[i] + errors[i + 1])
    assert means[-1] - means[0] > 0.05  # the few-sample bound really was loose
    assert means[-1] <= 0.05


def test_stratified_counts_give_every_component_and_the_prior_its_share():
    assert stratified_counts(1000, 3, 0.1) == [300, 300, 300, 100]
    assert stratified_counts(10, 3, 0.1) == [3, 3, 3, 1]
    assert sum(stratified_counts(1001, 7, 0.1)) == 1001
    with pytest.raises(ValueError, match="too small"):
        stratified_counts(3, 3, 0.1)


def test_every_model_scores_every_subset_it_infers_from_with_common_draws():
    for modalities in (None, MODALITIES3):
        kwargs = {} if modalities is None else {"modalities": modalities}
        batch = make_batch(**kwargs)
        for model_class in (JointMVAE, MWVAE, MVAEPoE, FMWVAE, JMVAE, MMVAE, MoPoE):
            model = make_model(model_class, **kwargs).eval()
            found = estimate_log_likelihoods(model, batch, k=60, k_chunk=25, generator=seeded(0))
            expected = [
                s
                for s in [("image",), ("label",), ("image", "label")]
                + ([("image2",), ("image", "image2"), ("label", "image2")] if modalities else [])
                + ([("image", "label", "image2")] if modalities else [])
                if model.can_infer_from(s)
            ]
            assert set(found) == set(expected), model_class
            for subset, estimate in found.items():
                assert estimate.log_p.shape == (5,) and torch.isfinite(estimate.log_p).all()
                assert (estimate.log_p < 0).all()  # binary pixels and classes
                assert ((estimate.ess > 0.99) & (estimate.ess <= 60 + 1e-6)).all()
                # Common draws and p(x_m | z) <= 1: adding a modality never raises the estimate.
                for smaller, other in found.items():
                    if set(smaller) < set(subset):
                        assert (estimate.log_p <= other.log_p + 1e-5).all(), (subset, smaller)
        with pytest.raises(KeyError, match="caption"):
            estimate_log_likelihoods(model, batch, [["caption"]], k=10)


def test_subset_names():
    names = ["image", "label", "image2"]
    assert subset_name(("image", "label", "image2"), names) == "joint"
    assert subset_name(("image2", "image"), names) == "image+image2"
    assert subset_name(("x",), ["x"]) == "x"


# ------------------------------------------------------------------ a small trained model
def prototype_data(n: int, seed: int) -> dict[str, torch.Tensor]:
    """4x4 binary images: one of three fixed patterns with 10% of pixels flipped."""
    generator = torch.Generator().manual_seed(seed)
    patterns = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(99)).round()
    labels = torch.randint(0, 3, (n,), generator=generator)
    flips = (torch.rand(n, 1, 4, 4, generator=generator) < 0.1).float()
    return {"image": (patterns[labels] - flips).abs(), "label": labels}


@pytest.fixture(scope="module")
def trained():
    """A tiny MW-VAE trained for a few hundred steps (seconds)."""
    model = make_model(MWVAE, align_weight=1.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    data = prototype_data(2000, seed=0)
    torch.manual_seed(0)
    for _ in range(300):
        rows = torch.randint(0, 2000, (64,))
        loss = model.objective({m: t[rows] for m, t in data.items()}).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), prototype_data(40, seed=1)


def test_k_1000_agrees_with_a_much_larger_k_on_a_trained_model(trained):
    model, batch = trained
    small = estimate_log_likelihoods(model, batch, k=1000, generator=seeded(1))
    large = estimate_log_likelihoods(model, batch, k=50_000, k_chunk=5000, generator=seeded(2))
    for subset in small:
        gap = small[subset].log_p - large[subset].log_p
        assert gap.mean().abs() < 0.02, subset
        assert gap.abs().max() < 0.2, subset


def test_importance_estimate_agrees_with_ais_on_a_trained_model(trained):
    model, batch = trained
    batch = {m: t[:20] for m, t in batch.items()}
    reference = estimate_log_likelihoods(model, batch, k=50_000, k_chunk=5000, generator=seeded(3))
    ais = likelihood_metrics(
        model, batch, method="ais", batch_size=20, ais={"steps": 200, "leapfrog": 5, "chains": 4}
    )
    for subset, estimate in reference.items():
        name = subset_name(subset, model.modality_names)
        # AIS is a stochastic lower bound: close to the reference, and not far above it.
        assert abs(ais[f"loglik/{name}"] - estimate.log_p.mean().item()) < 0.1, name


def test_metrics_report_errors_effective_sizes_and_conditionals(trained):
    model, batch = trained
    metrics = likelihood_metrics(model, batch, k=200, batch_size=16)
    for name in ("joint", "image", "label"):
        assert metrics[f"loglik_se/{name}"] > 0
        assert 0 < metrics[f"loglik_ess/{name}"] <= 1
    for key in ("image_given_label", "label_given_image"):
        assert metrics[f"loglik/{key}"] <= 1e-5  # bounded likelihoods: log p(. | .) <= 0
        assert metrics[f"loglik_se/{key}"] > 0
    assert metrics["loglik/image_given_label"] == pytest.approx(
        metrics["loglik/joint"] - metrics["loglik/label"]
    )
    assert likelihood_metrics(model, batch, num_samples=0) == {}
    with pytest.raises(ValueError, match="method"):
        likelihood_metrics(model, batch, method="exact")


def test_a_low_effective_sample_size_is_warned_about(caplog):
    model, exact = ppca_model(inflate=0.05)
    x = exact.sample((20,))
    with caplog.at_level("WARNING"):
        likelihood_metrics(model, {"x": x}, k=20, batch_size=20)
    assert "effective sample size below 1%" not in caplog.text  # K = 20: 1 draw is 5% of K
    with caplog.at_level("WARNING"):
        likelihood_metrics(model, {"x": 10 * x}, k=1000, batch_size=20)
    assert "effective sample size below 1%" in caplog.text
