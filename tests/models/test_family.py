"""What every model promises: a posterior and a reconstruction for every
subset it can infer from, a documented error otherwise, and a checkpoint
that rebuilds it."""

from __future__ import annotations

import copy

import pytest
import torch

from mwvae import load_model
from mwvae.config.catalog import model_class, model_names
from mwvae.models import (
    JMVAE,
    VAE,
    JointMVAE,
    UnsupportedSubsetError,
)
from mwvae.models.base import nonempty_subsets

from .tiny import MODALITIES, MODALITIES3, MODALITIES_TOKENS, make_batch, make_model

# Every model class of the catalog (config variants such as m_vae share a class).
MODELS = sorted({model_class(name) for name in model_names()}, key=lambda c: c.__name__)
MULTIMODAL = [c for c in MODELS if not c.unimodal]


def expected_to_infer(model_class, subset, all_names) -> bool:
    if model_class is JointMVAE:
        return set(subset) == set(all_names)
    if model_class is JMVAE:
        return len(subset) == 1 or set(subset) == set(all_names)
    return True


@pytest.mark.parametrize(
    "modalities",
    [MODALITIES, MODALITIES3, MODALITIES_TOKENS],
    ids=["mnist", "mnist3", "tokens"],
)
@pytest.mark.parametrize("model_class", MODELS, ids=lambda c: c.__name__)
def test_reconstruct_every_subset_or_raise_the_documented_error(model_class, modalities):
    model, batch = make_model(model_class, modalities).eval(), make_batch(modalities=modalities)
    names = model.modality_names
    for subset in nonempty_subsets(names):
        observed = {m: batch[m] for m in subset}
        if expected_to_infer(model_class, subset, names):
            out = model.reconstruct(observed)
            assert set(out) == set(names)
            for m, value in out.items():
                assert value.shape[0] == 5 and torch.isfinite(value).all(), m
            assert model.posterior(observed).mu.shape == (5, model.latent_dim)
        else:
            with pytest.raises(UnsupportedSubsetError, match="cannot infer"):
                model.reconstruct(observed)
    if model_class is VAE and "label" in batch:
        with pytest.raises(KeyError, match="label"):
            model.reconstruct({"label": batch["label"]})


@pytest.mark.parametrize("model_class", MULTIMODAL, ids=lambda c: c.__name__)
def test_every_multimodal_model_learns_token_captions(model_class):
    """Gradients reach the caption's GRUs, and a few steps on one batch lower the loss."""
    model = make_model(model_class, MODALITIES_TOKENS).train()
    batch = make_batch(modalities=MODALITIES_TOKENS)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for step in range(20):
        model.reseed(step)
        optimizer.zero_grad()
        loss = model.objective(batch).loss
        loss.backward()
        if step == 0:
            for name, p in model.named_parameters():
                if "caption" in name and "gru" in name:
                    assert p.grad is not None and p.grad.abs().sum() > 0, name
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) < 0.8 * sum(losses[:3])


@pytest.mark.parametrize("model_class", MODELS, ids=lambda c: c.__name__)
def test_checkpoint_rebuilds_the_model(model_class, tmp_path):
    model, batch = make_model(model_class).eval(), make_batch()
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "model.ckpt")
    loaded = load_model(tmp_path / "model.ckpt")
    assert type(loaded) is model_class
    observed = {m: batch[m] for m in model.modality_names}
    expected, actual = model.reconstruct(observed), loaded.reconstruct(observed)
    for m in expected:
        torch.testing.assert_close(actual[m], expected[m], rtol=0, atol=0)


def test_the_saved_hyperparameters_are_the_models_own_copy():
    modalities = copy.deepcopy(MODALITIES)
    model = make_model(model_class("mw_vae"), modalities)
    model.hparams["modalities"]["label"]["weight"] = 99.0
    model.hparams["modalities"]["image"]["encoder"]["hidden_dims"].append(32)
    assert modalities == MODALITIES  # the caller's specs are untouched
