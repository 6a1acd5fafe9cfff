"""MMVAE+'s objective on a fixed batch and seed against independent
computations (torch.distributions, explicit logsumexp, explicit DReG), its
incomplete-data terms, and its inference API over the whole latent.

The noise is drawn as the model draws it: per modality m in order, the K
samples of its code [z, w_m], then the auxiliary codes of the other
modalities with a private code (in the model's order), one draw each."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Independent, Normal

from mwvae.models import MMVAEPlus

from .test_missing_modalities import with_masks
from .tiny import LATENT, MODALITIES, MODALITIES3, make_batch, make_model

SEED = 11
PRIVATE = 3
WEIGHTS = {"image": 1.0, "label": 2.0, "image2": 1.0}
PRIVATE_OF = {"image": PRIVATE, "label": 0, "image2": PRIVATE}  # the label is shared-only


def normal(loc, scale) -> Independent:
    return Independent(Normal(loc, scale), 1)


def standard(x) -> Independent:
    return normal(torch.zeros_like(x), torch.ones_like(x))


def codes(model, batch) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each modality's posterior over its code: (loc, scale)."""
    out = {}
    for m, x in batch.items():
        q = model.encoders[m](x)
        out[m] = (q.mu, (0.5 * q.logvar).exp())
    return out


def log_lik(model, name, code, target) -> torch.Tensor:
    """Weighted log p(x_n | code) for codes (..., N, D): shape (..., N)."""
    logits = model.decoders[name](code)
    if name == "label":
        log_p = torch.distributions.Categorical(logits=logits).log_prob(target)
    else:
        log_p = torch.distributions.Bernoulli(logits=logits).log_prob(target).flatten(-3).sum(-1)
    return WEIGHTS[name] * log_p


def log_weights(model, batch, k, beta, aux, stop=False):
    """Per stratum m: (log W of shape (K, N), the samples [z, w_m] of shape (K, N, D)),
    with q's parameters detached in the log densities when `stop` (DReG)."""
    post = codes(model, batch)
    names = list(batch)
    private = [n for n in names if PRIVATE_OF[n] > 0]
    result = {}
    for m in names:
        loc, scale = post[m]
        sample = loc + scale * torch.randn(k, *loc.shape)
        z, w = sample[..., :LATENT], sample[..., LATENT:]
        others = [n for n in private if n != m]
        draws = aux * torch.randn(k, loc.shape[0], PRIVATE * len(others))
        own = {n: draws[..., i * PRIVATE : (i + 1) * PRIVATE] for i, n in enumerate(others)}
        own[m] = w
        total = sum(
            log_lik(model, n, torch.cat([z, own[n] if PRIVATE_OF[n] else z[..., :0]], -1), batch[n])
            for n in names
        )

        def q(n, part):
            loc_n, scale_n = post[n]
            loc_n, scale_n = (loc_n.detach(), scale_n.detach()) if stop else (loc_n, scale_n)
            cut = slice(None, LATENT) if part == "z" else slice(LATENT, None)
            return normal(loc_n[..., cut], scale_n[..., cut])

        log_mix = torch.logsumexp(torch.stack([q(n, "z").log_prob(z) for n in names]), 0)
        log_mix = log_mix - math.log(len(names))
        log_prior = standard(z).log_prob(z) + standard(w).log_prob(w)
        result[m] = (total + beta * (log_prior - log_mix - q(m, "w").log_prob(w)), sample)
    return result


def model_loss(model, batch):
    torch.manual_seed(SEED)
    return model.objective(batch).loss


@pytest.mark.parametrize("modalities", [MODALITIES, MODALITIES3], ids=["M2", "M3"])
def test_k1_is_the_stratified_elbo(modalities):
    """Written as an ELBO: reconstructions plus beta times sampled KL estimates."""
    options = {"private_dim": PRIVATE, "beta": 0.7, "aux_scale": 2.0}
    model, batch = make_model(MMVAEPlus, modalities, **options), make_batch(modalities=modalities)
    loss = model_loss(model, batch)
    torch.manual_seed(SEED)
    post = codes(model, batch)
    names = list(batch)
    strata = []
    for m in names:
        loc, scale = post[m]
        u = loc + scale * torch.randn_like(loc)
        z, w = u[:, :LATENT], u[:, LATENT:]
        others = [n for n in names if PRIVATE_OF[n] and n != m]
        aux = 2.0 * torch.randn(len(loc), PRIVATE * len(others))
        style = dict(zip(others, aux.split(PRIVATE, -1), strict=False)) | {m: w}
        recon = sum(
            -log_lik(model, n, torch.cat([z, style[n]], -1) if PRIVATE_OF[n] else z, batch[n])
            for n in names
        )
        mixture = torch.stack(
            [normal(post[n][0][:, :LATENT], post[n][1][:, :LATENT]).log_prob(z) for n in names]
        )
        kl_shared = torch.logsumexp(mixture, 0) - math.log(len(names)) - standard(z).log_prob(z)
        q_w = normal(loc[:, LATENT:], scale[:, LATENT:])
        kl_private = q_w.log_prob(w) - standard(w).log_prob(w)
        strata.append(recon + 0.7 * (kl_shared + kl_private))
    torch.testing.assert_close(loss, torch.stack(strata).mean())


@pytest.mark.parametrize("modalities", [MODALITIES, MODALITIES3], ids=["M2", "M3"])
def test_k_samples_give_the_stratified_iwae_bound(modalities):
    options = {"private_dim": PRIVATE, "beta": 1.3, "aux_scale": 1.5, "k": 5}
    model, batch = make_model(MMVAEPlus, modalities, **options), make_batch(modalities=modalities)
    loss = model_loss(model, batch)
    torch.manual_seed(SEED)
    lws = log_weights(model, batch, k=5, beta=1.3, aux=1.5)
    bounds = [torch.logsumexp(lw, 0) - math.log(5) for lw, _ in lws.values()]
    torch.testing.assert_close(loss, -torch.stack(bounds).mean())
    # K samples bound log p(X) more tightly than their mean ELBO (a check of the formula)
    elbo = torch.stack([lw.mean(0) for lw, _ in lws.values()]).mean()
    assert -loss >= elbo


def grads(loss, params):
    return torch.autograd.grad(loss, params, allow_unused=True)


def test_dreg_keeps_the_bounds_value_and_has_the_doubly_reparameterised_gradient():
    options = {"private_dim": PRIVATE, "k": 4, "beta": 0.8}
    iwae = make_model(MMVAEPlus, MODALITIES3, **options)
    dreg = make_model(MMVAEPlus, MODALITIES3, estimator="dreg", **options)
    batch = make_batch(modalities=MODALITIES3)
    encoders = [list(m.encoders.parameters()) for m in (iwae, dreg)]
    decoders = [list(m.decoders.parameters()) for m in (iwae, dreg)]
    iwae_loss, dreg_loss = model_loss(iwae, batch), model_loss(dreg, batch)
    assert torch.equal(iwae_loss, dreg_loss)
    dreg_grads = grads(dreg_loss, encoders[1] + decoders[1])
    iwae_grads = grads(iwae_loss, encoders[0] + decoders[0])
    # Explicit DReG (Tucker et al. 2019): log q scored with stopped parameters; encoders
    # sum_k W~^2 d log W / d sample, decoders the IWAE gradient sum_k W~ d log W.
    torch.manual_seed(SEED)
    lws = log_weights(dreg, batch, k=4, beta=0.8, aux=1.0, stop=True)
    squared = torch.stack(
        [(torch.softmax(lw.detach(), 0) ** 2 * lw).sum(0) for lw, _ in lws.values()]
    )
    expected_encoders = grads(-squared.mean(), encoders[1])
    torch.manual_seed(SEED)
    lws = log_weights(dreg, batch, k=4, beta=0.8, aux=1.0)
    bound = torch.stack([torch.logsumexp(lw, 0) - math.log(4) for lw, _ in lws.values()])
    expected_decoders = grads(-bound.mean(), decoders[1])
    n = len(encoders[1])
    for got, want in zip(dreg_grads[:n], expected_encoders, strict=True):
        torch.testing.assert_close(got, want)
    for got, want in zip(dreg_grads[n:], expected_decoders, strict=True):
        torch.testing.assert_close(got, want)
    for got, want in zip(dreg_grads[n:], iwae_grads[n:], strict=True):
        torch.testing.assert_close(got, want)  # the decoders' gradient is the bound's
    assert any(
        not torch.allclose(a, b) for a, b in zip(dreg_grads[:n], iwae_grads[:n], strict=True)
    )


def test_incomplete_examples_have_their_own_mixture_strata_and_terms():
    """Per example: strata and mixture over what it observes, likelihoods of
    those only, the mean over its strata of the K-sample bounds."""
    n, k = 6, 3
    model = make_model(MMVAEPlus, MODALITIES3, private_dim=PRIVATE, k=k, beta=0.9)
    batch = make_batch(n, MODALITIES3)
    hidden = {"label": [0, 3], "image": [1, 4], "image2": [4]}
    torch.manual_seed(SEED)
    loss = model.objective(with_masks(batch, hidden)).loss
    torch.manual_seed(SEED)
    post = codes(model, batch)
    names = list(batch)
    drawn = {}
    for m in names:  # the same draws as the model's, for the whole batch
        loc = post[m][0]
        others = [o for o in names if PRIVATE_OF[o] and o != m]
        drawn[m] = (torch.randn(k, *loc.shape), torch.randn(k, n, PRIVATE * len(others)), others)
    per_example = []
    for i in range(n):
        present = [m for m in names if i not in hidden.get(m, [])]
        strata = []
        for m in present:
            noise, aux, others = drawn[m]
            loc, scale = post[m][0][i], post[m][1][i]
            u = loc + scale * noise[:, i]
            z, w = u[:, :LATENT], u[:, LATENT:]
            style = dict(zip(others, aux[:, i].split(PRIVATE, -1), strict=False)) | {m: w}
            total = 0.0
            for o in present:
                code = torch.cat([z, style[o]], -1) if PRIVATE_OF[o] else z
                target = batch[o][i].expand(k, *batch[o][i].shape)
                total = total + log_lik(model, o, code.view(k, *code.shape[1:]), target)
            mixture = torch.stack(
                [
                    normal(post[e][0][i, :LATENT], post[e][1][i, :LATENT]).log_prob(z)
                    for e in present
                ]
            )
            log_mix = torch.logsumexp(mixture, 0) - math.log(len(present))
            log_q_w = normal(loc[LATENT:], scale[LATENT:]).log_prob(w)
            log_prior = standard(z).log_prob(z) + standard(w).log_prob(w)
            lw = total + 0.9 * (log_prior - log_mix - log_q_w)
            strata.append(torch.logsumexp(lw, 0) - math.log(k))
        per_example.append(torch.stack(strata).mean())
    torch.testing.assert_close(loss, -torch.stack(per_example).mean())


def test_inference_reads_the_shared_mixture_and_fills_private_codes_from_the_auxiliary_prior():
    model = make_model(MMVAEPlus, MODALITIES3, private_dim=PRIVATE, aux_scale=2.5).eval()
    batch = make_batch(modalities=MODALITIES3)
    assert model.private_modalities == ["image", "image2"]
    assert model.prior_dim == LATENT + 2 * PRIVATE
    assert model.imputation_styles == ("prior",)
    post = codes(model, batch)
    # posterior: the moment-matched mixture of the shared parts
    mus = torch.stack([post[m][0][:, :LATENT] for m in batch])
    variances = torch.stack([post[m][1][:, :LATENT] ** 2 for m in batch])
    mean = mus.mean(0)
    q = model.posterior(batch)
    torch.testing.assert_close(q.mu, mean)
    torch.testing.assert_close(q.logvar.exp(), (variances + mus**2).mean(0) - mean**2)
    # an unobserved image: the shared code and r's mean, 0
    c = model.posterior({"label": batch["label"]}).mu
    out = model.reconstruct({"label": batch["label"]}, style="prior")
    image = model.decoders["image"](torch.cat([c, torch.zeros(5, PRIVATE)], -1)).sigmoid()
    torch.testing.assert_close(out["image"], image)
    # sampled: each unobserved private code from r = N(0, 2.5^2)
    torch.manual_seed(0)
    sampled = model.reconstruct({"label": batch["label"]}, sample=True)
    torch.manual_seed(0)
    c = model.posterior({"label": batch["label"]}).rsample()
    styles = [2.5 * torch.randn(5, PRIVATE) for _ in ("image", "image2")]
    expected = model.decoders["image2"](torch.cat([c, styles[1]], -1)).sigmoid()
    torch.testing.assert_close(sampled["image2"], expected)
    # the whole latent [z, w_image, w_image2] under N(0, I): decode and the proposals
    z = torch.randn(4, model.prior_dim)
    decoded = model.decode(z)
    torch.testing.assert_close(decoded["label"], model.decoders["label"](z[:, :LATENT]))
    whole_image2 = torch.cat([z[:, :LATENT], z[:, LATENT + PRIVATE :]], -1)
    torch.testing.assert_close(decoded["image2"], model.decoders["image2"](whole_image2))
    for component in model.proposal_components(batch):
        assert component.mu.shape == (5, model.prior_dim)
    with pytest.raises(ValueError, match="style='class_mean'"):
        model.reconstruct({"label": batch["label"]}, style="class_mean")
