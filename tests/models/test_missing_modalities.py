"""Training on incomplete examples: what a hidden modality may and may not reach."""

from __future__ import annotations

import pytest
import torch

from mwvae.gaussians import DiagGaussian, w2_squared
from mwvae.models import (
    FMWVAE,
    JMVAE,
    MMVAE,
    MVTCAE,
    MWVAE,
    VAE,
    JointMVAE,
    MMVAEPlus,
    MoPoE,
    MVAEPoE,
)
from mwvae.models.base import IncompleteDataError
from mwvae.models.fmw_vae import cross_covariance_penalty, mmd_penalty

from .tiny import MODALITIES, MODALITIES3, make_batch, make_model

N = 6
# Every model that trains on incomplete data, with the options that change its objective.
VARIANTS = {
    "vae": (VAE, {}),
    "m_vae": (MWVAE, {"align_weight": 0.0}),
    "mw_vae": (MWVAE, {"align_weight": 3.0}),
    "mvae_poe": (MVAEPoE, {"subsample": True}),
    "mvae_poe_paper": (MVAEPoE, {"subsample": False}),
    "fmw_vae": (FMWVAE, {"align_weight": 3.0, "private_dim": 2}),
    "fmw_vae_cross_cov": (
        FMWVAE,
        {"private_dim": 2, "decorrelation": "cross_cov", "decorrelation_weight": 1.0},
    ),
    "fmw_vae_mmd": (
        FMWVAE,
        {"private_dim": 2, "decorrelation": "mmd", "decorrelation_weight": 1.0},
    ),
    "mmvae": (MMVAE, {}),
    "mopoe": (MoPoE, {}),
    "mopoe_sampled": (MoPoE, {"subsets": "sampled"}),
    "mvtcae": (MVTCAE, {"alpha": 0.5}),
    "mmvae_plus": (MMVAEPlus, {"private_dim": 2}),
    "mmvae_plus_dreg": (MMVAEPlus, {"private_dim": 2, "k": 3, "estimator": "dreg"}),
}
MODALITY_SETS = {"mnist": MODALITIES, "mnist3": MODALITIES3}


def with_masks(batch, hidden: dict[str, list[int]] | None = None, names=None):
    """`batch` plus a mask per modality, hiding modality m in examples hidden[m]."""
    masked = dict(batch)
    for m in names or batch:
        mask = torch.ones(len(batch[m]), dtype=torch.bool)
        mask[(hidden or {}).get(m, [])] = False
        masked[f"mask/{m}"] = mask
    return masked


def terms_of(model, batch, seed=3):
    torch.manual_seed(seed)
    model.reseed(seed)  # mVAE-PoE's subset generator too
    return model.objective(batch)


@pytest.mark.parametrize("data", MODALITY_SETS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_mask_set_gives_exactly_the_unmasked_loss(variant, data):
    model_class, options = VARIANTS[variant]
    modalities = MODALITY_SETS[data]
    model, batch = make_model(model_class, modalities, **options), make_batch(N, modalities)
    plain = terms_of(model, batch).as_metrics()
    masked = terms_of(model, with_masks(batch)).as_metrics()
    assert plain.keys() == masked.keys()
    for name in plain:
        assert torch.equal(plain[name], masked[name]), name


def output_rows(module, outputs: list[torch.Tensor]):
    """Record every output of `module` (a posterior's mu and logvar, or logits)."""

    def hook(_module, _inputs, output):
        outputs.extend([output.mu, output.logvar] if isinstance(output, DiagGaussian) else [output])

    return module.register_forward_hook(hook)


@pytest.mark.parametrize("data", MODALITY_SETS)
@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "vae"])
def test_a_hidden_label_sends_no_gradient_into_the_label_networks(variant, data):
    model_class, options = VARIANTS[variant]
    modalities = MODALITY_SETS[data]
    model, batch = make_model(model_class, modalities, **options), make_batch(N, modalities)
    hidden = [0, 3]
    outputs = []
    hooks = [
        output_rows(model.encoders["label"], outputs),
        output_rows(model.decoders["label"], outputs),
    ]
    loss = terms_of(model, with_masks(batch, {"label": hidden, "image": [1]})).loss
    for hook in hooks:
        hook.remove()
    grads = torch.autograd.grad(loss, outputs, allow_unused=True)
    used = [g for g in grads if g is not None]
    assert used, "the label networks take part in the loss"
    for grad in used:
        assert torch.equal(grad[hidden], torch.zeros_like(grad[hidden]))
    observed = [i for i in range(N) if i not in hidden]
    assert any(grad[observed].abs().sum() > 0 for grad in used)


@pytest.mark.parametrize("data", MODALITY_SETS)
@pytest.mark.parametrize("variant", ["mw_vae", "fmw_vae", "m_vae"])
def test_w2_counts_only_examples_with_both_modalities(variant, data):
    model_class, options = VARIANTS[variant]
    modalities = MODALITY_SETS[data]
    model, batch = make_model(model_class, modalities, **options), make_batch(N, modalities)
    names = list(modalities)
    hidden = {"label": [0, 2], "image": [1, 2]}  # example 2 keeps only image2 (mnist3) or nothing
    posteriors = model.encode({m: batch[m] for m in names})
    w2 = terms_of(model, with_masks(batch, hidden)).w2
    # Independently: the mean over pairs each example observes, of W2^2 on the shared parts.
    shared = model.split if variant == "fmw_vae" else (lambda q: (q, None))
    per_example = torch.zeros(N)
    for i in range(N):
        present = [m for m in names if i not in hidden.get(m, [])]
        pairs = [
            w2_squared(shared(posteriors[a])[0], shared(posteriors[b])[0])[i]
            for j, a in enumerate(present)
            for b in present[j + 1 :]
        ]
        if pairs:
            per_example[i] = torch.stack(pairs).mean()
    if len(names) == 2:
        assert per_example[[0, 1, 2]].eq(0).all()
    torch.testing.assert_close(w2, per_example.mean())


@pytest.mark.parametrize("model_class", [JointMVAE, JMVAE], ids=lambda c: c.__name__)
def test_joint_encoder_models_refuse_incomplete_batches(model_class):
    model, batch = make_model(model_class), make_batch(N)
    assert torch.isfinite(model.objective(batch).loss)
    with pytest.raises(IncompleteDataError, match="cannot train on examples that miss"):
        model.objective(with_masks(batch, {"label": [0]}))


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_value_of_a_hidden_modality_changes_nothing(variant):
    """Another placeholder where image and label are hidden: the same loss and
    gradients (placeholders must be finite: the networks run on them)."""
    model_class, options = VARIANTS[variant]
    hidden = {"image": [0, 4], "label": [1, 5]}

    def loss_and_grads(batch):
        model = make_model(model_class, MODALITIES, **options)
        loss = terms_of(model, with_masks(batch, hidden)).loss
        loss.backward()
        return loss, [p.grad for p in model.parameters()]

    batch = make_batch(N)
    other = {m: x.clone() for m, x in batch.items()}
    other["image"][hidden["image"]] = 0.5
    other["label"][hidden["label"]] = (batch["label"][hidden["label"]] + 1) % 3
    loss, grads = loss_and_grads(batch)
    other_loss, other_grads = loss_and_grads(other)
    assert torch.equal(loss, other_loss)
    for grad, other_grad in zip(grads, other_grads, strict=True):
        assert (grad is None and other_grad is None) or torch.equal(grad, other_grad)


def test_masked_decorrelation_penalties_are_those_of_the_kept_examples():
    generator = torch.Generator().manual_seed(0)
    c, s = torch.randn(8, 3, generator=generator), torch.randn(8, 2, generator=generator)
    kept = torch.tensor([True, False, True, True, False, True, True, False])
    torch.testing.assert_close(
        cross_covariance_penalty(c, s, kept), cross_covariance_penalty(c[kept], s[kept])
    )
    torch.manual_seed(1)
    penalty = mmd_penalty(c, s, kept)
    torch.manual_seed(1)
    order = torch.randperm(8)  # the shuffle mmd_penalty draws
    joint = torch.cat([c, s], -1)
    independent = torch.cat([c, s[order]], -1)

    def kernel_mean(a, a_rows, b, b_rows):
        values = [
            torch.exp(-(a[i] - b[j]).square().sum() / a.shape[-1]) for i in a_rows for j in b_rows
        ]
        return torch.stack(values).mean()

    rows = kept.nonzero().squeeze(1).tolist()
    shuffled = [i for i in rows if kept[order[i]]]
    expected = (
        kernel_mean(joint, rows, joint, rows)
        + kernel_mean(independent, shuffled, independent, shuffled)
        - 2 * kernel_mean(joint, rows, independent, shuffled)
    )
    torch.testing.assert_close(penalty, expected)
