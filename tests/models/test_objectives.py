"""Each model's loss on a fixed batch and seed against an independent
computation of its paper's objective, written here with torch.distributions
(not with the model's own helpers); only the networks are the model's.

The reparameterisation noise is drawn in the order the models draw it, with
`torch.randn_like`, so both sides see the same samples.
"""

from __future__ import annotations

import math
from itertools import combinations

import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

from mwvae.models import FMWVAE, JMVAE, MMVAE, MWVAE, VAE, JointMVAE, MoPoE, MVAEPoE

from .tiny import LATENT, MODALITIES, MODALITIES3, make_batch, make_model

SEED = 11
WEIGHTS = {"image": 1.0, "label": 2.0, "image2": 1.0}


def normal(q) -> Independent:
    return Independent(Normal(q.mu, (0.5 * q.logvar).exp()), 1)


def prior_like(mu) -> Independent:
    return Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)


def sample(dist: Independent) -> torch.Tensor:
    base = dist.base_dist
    return base.loc + base.scale * torch.randn_like(base.loc)


def log_lik(model, name, z, batch) -> torch.Tensor:
    """Weighted log p(x_m | z) per example, with torch.distributions."""
    logits = model.decoders[name](z)
    if name == "label":
        log_p = torch.distributions.Categorical(logits=logits).log_prob(batch[name])
    else:
        log_p = torch.distributions.Bernoulli(logits=logits).log_prob(batch[name]).flatten(1).sum(1)
    return WEIGHTS[name] * log_p


def nll(model, name, z, batch) -> torch.Tensor:
    """-log p(x_m | z), weighted, batch mean."""
    return -log_lik(model, name, z, batch).mean()


def kl_prior(dist: Independent) -> torch.Tensor:
    return kl_divergence(dist, prior_like(dist.base_dist.loc)).mean()


def product(dists: list[Independent]) -> Independent:
    """Product of Gaussian densities with a N(0, I) expert, by precision weighting."""
    precision = 1.0 + sum(1 / d.base_dist.scale**2 for d in dists)
    mean = sum(d.base_dist.loc / d.base_dist.scale**2 for d in dists) / precision
    return Independent(Normal(mean, precision.rsqrt()), 1)


def unimodal(model, batch) -> dict[str, Independent]:
    return {m: normal(model.encoders[m](x)) for m, x in batch.items()}


def w2(p: Independent, q: Independent) -> torch.Tensor:
    a, b = p.base_dist, q.base_dist
    return ((a.loc - b.loc) ** 2).sum(-1) + ((a.scale - b.scale) ** 2).sum(-1)


def model_loss(model, batch):
    torch.manual_seed(SEED)
    return model.objective(batch).loss


def test_vae_is_the_elbo_of_its_one_modality():
    model, batch = make_model(VAE, modality="label", beta=0.7), make_batch()
    loss = model_loss(model, batch)
    torch.manual_seed(SEED)
    q = normal(model.encoders["label"](batch["label"]))
    expected = nll(model, "label", sample(q), batch) + 0.7 * kl_prior(q)
    torch.testing.assert_close(loss, expected)
    assert model.modality_names == ["label"]


def test_joint_m_vae_encodes_both_modalities_together():
    model, batch = make_model(JointMVAE, feature_dim=5, joint_hidden_dims=[7]), make_batch()
    loss = model_loss(model, batch)
    torch.manual_seed(SEED)
    joint_encoder = model.encoders["joint"]
    features = torch.cat([joint_encoder.features[m](batch[m]).mu for m in ("image", "label")], -1)
    mu, logvar = joint_encoder.head.linear(joint_encoder.body(features)).chunk(2, -1)
    q = Independent(Normal(mu, (0.5 * logvar).exp()), 1)
    z = sample(q)
    expected = nll(model, "image", z, batch) + nll(model, "label", z, batch) + kl_prior(q)
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("modalities", [MODALITIES, MODALITIES3], ids=["M2", "M3"])
def test_mw_vae_aligns_every_pair(modalities):
    model, batch = (
        make_model(MWVAE, modalities, align_weight=2.5),
        make_batch(modalities=modalities),
    )
    loss = model_loss(model, batch)
    torch.manual_seed(SEED)
    q = unimodal(model, batch)
    expected = sum(nll(model, m, sample(q[m]), batch) + kl_prior(q[m]) for m in q)
    pairs = [w2(q[a], q[b]) for a, b in combinations(q, 2)]
    expected = expected + 2.5 * torch.stack(pairs).mean(0).mean()
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("subsample", [False, True])
def test_mvae_poe_joint_elbo_and_subsampled_elbos(subsample):
    model, batch = make_model(MVAEPoE, subsample=subsample), make_batch()
    loss = model_loss(model, batch)
    torch.manual_seed(SEED)
    q = unimodal(model, batch)
    joint = product(list(q.values()))
    z = sample(joint)
    expected = nll(model, "image", z, batch) + nll(model, "label", z, batch) + kl_prior(joint)
    if subsample:
        for m in ("image", "label"):
            single = product([q[m]])
            expected = expected + nll(model, m, sample(single), batch) + kl_prior(single)
    torch.testing.assert_close(loss, expected)


def test_mopoe_averages_the_elbos_of_every_subset():
    model, batch = make_model(MoPoE), make_batch()
    loss = model_loss(model, batch)
    torch.manual_seed(SEED)
    q = unimodal(model, batch)
    subsets = [("image",), ("label",), ("image", "label")]
    terms = []
    for subset in subsets:
        poe = product([q[m] for m in subset])
        z = sample(poe)
        terms.append(nll(model, "image", z, batch) + nll(model, "label", z, batch) + kl_prior(poe))
    torch.testing.assert_close(loss, sum(terms) / len(subsets))


def test_mopoe_with_the_prior_in_the_whole_sets_product_only():
    """MoPoE's own code (and MultiVae's): a single modality's component is its
    posterior itself; only the product of all modalities has p(z) too."""
    model, batch = make_model(MoPoE, prior_expert="whole_set"), make_batch()
    loss = model_loss(model, batch)
    torch.manual_seed(SEED)
    q = unimodal(model, batch)
    components = [q["image"], q["label"], product([q["image"], q["label"]])]
    terms = []
    for component in components:
        z = sample(component)
        recon = nll(model, "image", z, batch) + nll(model, "label", z, batch)
        terms.append(recon + kl_prior(component))
    torch.testing.assert_close(loss, sum(terms) / len(components))
    posterior = model.posterior({"label": batch["label"]})
    torch.testing.assert_close(posterior.mu, q["label"].base_dist.loc)


def test_mopoe_sampled_decodes_each_example_from_one_subset():
    model = make_model(MoPoE, modalities=MODALITIES3, subsets="sampled")
    batch = make_batch(n=40, modalities=MODALITIES3)
    loss = model_loss(model, batch)
    torch.manual_seed(SEED)
    q = unimodal(model, batch)
    names = list(MODALITIES3)
    subsets = [s for size in (1, 2, 3) for s in combinations(names, size)]
    products = [product([q[m] for m in subset]) for subset in subsets]
    chosen = torch.stack([torch.rand(40) for _ in subsets]).argmax(0)
    loc = torch.stack([p.base_dist.loc for p in products])[chosen, torch.arange(40)]
    scale = torch.stack([p.base_dist.scale for p in products])[chosen, torch.arange(40)]
    z = loc + scale * torch.randn_like(loc)
    recon = sum(nll(model, m, z, batch) for m in names)
    kl = sum(kl_prior(p) for p in products) / len(subsets)
    torch.testing.assert_close(loss, recon + kl)
    assert len(set(chosen.tolist())) > 3  # the draw spreads over the subsets


def test_mopoe_auto_decodes_every_subset_up_to_three_modalities():
    assert make_model(MoPoE, modalities=MODALITIES3).decodes_every_subset(7)
    assert not make_model(MoPoE, modalities=MODALITIES3).decodes_every_subset(31)
    assert not make_model(MoPoE, subsets="sampled").decodes_every_subset(3)


def test_mmvae_stratified_elbo_over_the_mixture():
    model, batch = make_model(MMVAE), make_batch()
    loss = model_loss(model, batch)
    torch.manual_seed(SEED)
    q = unimodal(model, batch)
    terms = []
    for m in ("image", "label"):
        z = sample(q[m])
        log_mix = torch.logsumexp(torch.stack([q[k].log_prob(z) for k in q]), 0) - math.log(2)
        log_ratio = (log_mix - prior_like(z).log_prob(z)).mean()
        terms.append(nll(model, "image", z, batch) + nll(model, "label", z, batch) + log_ratio)
    torch.testing.assert_close(loss, sum(terms) / 2)


def test_jmvae_kl_objective():
    model = make_model(JMVAE, alpha=0.3, feature_dim=5, joint_hidden_dims=[7])
    batch = make_batch()
    loss = model_loss(model, batch)
    torch.manual_seed(SEED)
    q = unimodal(model, batch)
    joint = normal(model.encoders["joint"](batch))
    z = sample(joint)
    expected = nll(model, "image", z, batch) + nll(model, "label", z, batch) + kl_prior(joint)
    expected = expected + 0.3 * sum(kl_divergence(joint, q[m]).mean() for m in q)
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("decorrelation", ["none", "cross_cov"])
def test_fmw_vae_aligns_only_the_shared_part(decorrelation):
    private = 3
    model = make_model(
        FMWVAE,
        align_weight=1.5,
        private_dim=private,
        decorrelation=decorrelation,
        decorrelation_weight=0.4,
    )
    batch = make_batch()
    loss = model_loss(model, batch)
    torch.manual_seed(SEED)
    q = unimodal(model, batch)
    assert q["image"].base_dist.loc.shape[-1] == LATENT + private
    assert q["label"].base_dist.loc.shape[-1] == LATENT  # labels are shared-only by default
    expected = sum(nll(model, m, sample(q[m]), batch) + kl_prior(q[m]) for m in q)

    def shared(d):
        return Independent(Normal(d.base_dist.loc[:, :LATENT], d.base_dist.scale[:, :LATENT]), 1)

    expected = expected + 1.5 * w2(shared(q["image"]), shared(q["label"])).mean()
    if decorrelation == "cross_cov":
        for d in q.values():
            mean = d.base_dist.loc
            cov = torch.cov(mean.T)[:LATENT, LATENT:]  # rows: shared dims, columns: private dims
            expected = expected + 0.4 * cov.square().sum()
    torch.testing.assert_close(loss, expected)


def test_fmw_vae_decodes_missing_modalities_with_the_class_mean_style():
    model, batch = make_model(FMWVAE, private_dim=3), make_batch()
    model.train()
    model.objective(batch)  # accumulates the training styles
    q = unimodal(model, batch)
    image_private = q["image"].base_dist.loc[:, LATENT:]
    for c in batch["label"].unique():
        mask = batch["label"] == c
        torch.testing.assert_close(
            model.class_styles("image", c.view(1))[0], image_private[mask].mean(0)
        )
    model.eval()
    out = model.reconstruct({"label": batch["label"]})
    shared = q["label"].base_dist.loc[:, :LATENT]
    style = model.class_styles("image", batch["label"])
    expected = model.decoders["image"](torch.cat([shared, style], -1)).sigmoid()
    torch.testing.assert_close(out["image"], expected)
