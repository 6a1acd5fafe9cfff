"""MVTCAE's loss on a fixed batch and seed against an independent computation
of the authors' objective (torch.distributions, not the model's helpers):
(M - alpha)/M * reconstruction + beta * [(1 - alpha) KL(q || p) + alpha/M sum_m KL(q || q_m)],
q the product of the observed experts without a prior expert."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

from mwvae.models import MVTCAE

from .test_missing_modalities import with_masks
from .test_objectives import log_lik, normal, prior_like
from .tiny import MODALITIES, MODALITIES3, make_batch, make_model

SEED = 11


def product_without_prior(dists: list[Independent]) -> Independent:
    precision = sum(1 / d.base_dist.scale**2 for d in dists)
    mean = sum(d.base_dist.loc / d.base_dist.scale**2 for d in dists) / precision
    return Independent(Normal(mean, precision.rsqrt()), 1)


@pytest.mark.parametrize("modalities", [MODALITIES, MODALITIES3], ids=["M2", "M3"])
@pytest.mark.parametrize("alpha", [5 / 6, 0.3])
def test_mvtcae_total_correlation_objective(modalities, alpha):
    model = make_model(MVTCAE, modalities, alpha=alpha, beta=0.7)
    batch = make_batch(modalities=modalities)
    torch.manual_seed(SEED)
    loss = model.objective(batch).loss
    torch.manual_seed(SEED)
    q = {m: normal(model.encoders[m](x)) for m, x in batch.items()}
    joint = product_without_prior(list(q.values()))
    base = joint.base_dist
    z = base.loc + base.scale * torch.randn_like(base.loc)
    num = len(modalities)
    recon = -sum(log_lik(model, m, z, batch) for m in batch).mean()
    to_prior = kl_divergence(joint, prior_like(base.loc)).mean()
    to_experts = sum(kl_divergence(joint, q_m).mean() for q_m in q.values())
    expected = (num - alpha) / num * recon + 0.7 * (
        (1 - alpha) * to_prior + alpha / num * to_experts
    )
    torch.testing.assert_close(loss, expected)


def test_mvtcae_with_alpha_zero_is_the_elbo_of_the_product_of_experts():
    model, batch = make_model(MVTCAE, alpha=0.0), make_batch()
    torch.manual_seed(SEED)
    terms = model.objective(batch)
    torch.manual_seed(SEED)
    q = [normal(model.encoders[m](x)) for m, x in batch.items()]
    joint = product_without_prior(q)
    base = joint.base_dist
    z = base.loc + base.scale * torch.randn_like(base.loc)
    elbo = sum(log_lik(model, m, z, batch) for m in batch) - kl_divergence(
        joint, prior_like(base.loc)
    )
    torch.testing.assert_close(terms.loss, -elbo.mean())
    torch.testing.assert_close(terms.as_metrics()["elbo"], terms.loss)  # the plain -ELBO


def test_mvtcae_on_incomplete_data_counts_what_each_example_observes():
    """Per example: the product of its observed experts, its observed terms, the
    weights of the data's M = 3 modalities (the authors' indication)."""
    alpha, n = 0.4, 6
    model = make_model(MVTCAE, MODALITIES3, alpha=alpha)
    batch = make_batch(n, MODALITIES3)
    hidden = {"label": [0, 3], "image": [1, 4], "image2": [4]}
    torch.manual_seed(SEED)
    loss = model.objective(with_masks(batch, hidden)).loss
    torch.manual_seed(SEED)
    q = {m: normal(model.encoders[m](x)) for m, x in batch.items()}
    noise = torch.randn(n, q["image"].base_dist.loc.shape[-1])
    per_example = []
    for i in range(n):
        present = [m for m in batch if i not in hidden.get(m, [])]
        experts = [
            Independent(Normal(q[m].base_dist.loc[i], q[m].base_dist.scale[i]), 1) for m in present
        ]
        joint = product_without_prior(experts)
        z = joint.base_dist.loc + joint.base_dist.scale * noise[i]
        one = {m: x[i : i + 1] for m, x in batch.items()}
        recon = -sum(log_lik(model, m, z.unsqueeze(0), one)[0] for m in present)
        to_prior = kl_divergence(joint, prior_like(joint.base_dist.loc))
        to_experts = sum(kl_divergence(joint, e) for e in experts)
        per_example.append(
            (3 - alpha) / 3 * recon + (1 - alpha) * to_prior + alpha / 3 * to_experts
        )
    torch.testing.assert_close(loss, torch.stack(per_example).mean())
