"""FMW-VAE's public decoding API: the whole latent, imputation styles, style transfer."""

from __future__ import annotations

import pytest
import torch

from mwvae.models import FMWVAE, MWVAE

from .tiny import LATENT, make_batch, make_model


def test_decode_reads_the_shared_code_and_each_private_code():
    model = make_model(FMWVAE, private_dim=3).eval()
    assert model.prior_dim == LATENT + 3  # the label has no private code
    z = torch.randn(4, model.prior_dim)
    out = model.decode(z)
    assert set(out) == {"image", "label"}
    torch.testing.assert_close(out["image"], model.decoders["image"](z))  # [c, s_image]
    torch.testing.assert_close(out["label"], model.decoders["label"](z[:, :LATENT]))
    assert set(model.decode(z, ["label"])) == {"label"}


def test_decode_of_a_model_without_private_codes_reads_the_whole_latent():
    model = make_model(MWVAE).eval()
    z = torch.randn(4, model.prior_dim)
    torch.testing.assert_close(model.decode(z)["image"], model.decoders["image"](z))
    assert model.imputation_styles == () and model.private_modalities == []
    with pytest.raises(ValueError, match="no style"):
        model.reconstruct({"label": torch.tensor([0, 1])}, style="prior")


def test_each_style_fills_an_unobserved_private_code_as_documented():
    model = make_model(FMWVAE, private_dim=3, style="class_mean").eval()
    with torch.no_grad():
        model.style_sums_image.copy_(torch.arange(9.0).view(3, 3))
        model.style_counts.fill_(2.0)
    labels = torch.tensor([0, 2])
    c = model.posterior({"label": labels}).mu
    prior = model.reconstruct({"label": labels}, style="prior")["image"]
    expected = model.likelihoods["image"].mean(
        model.decoders["image"](torch.cat([c, torch.zeros(2, 3)], -1))
    )
    torch.testing.assert_close(prior, expected)
    class_mean = model.reconstruct({"label": labels}, style="class_mean")["image"]
    means = torch.arange(9.0).view(3, 3)[labels] / 2
    expected = model.likelihoods["image"].mean(model.decoders["image"](torch.cat([c, means], -1)))
    torch.testing.assert_close(class_mean, expected)
    torch.testing.assert_close(
        model.reconstruct({"label": labels})["image"], class_mean
    )  # configured
    with pytest.raises(ValueError, match="style='other'"):
        model.reconstruct({"label": labels}, style="other")


def test_transfer_style_takes_the_private_code_of_the_style_source():
    model, batch = make_model(FMWVAE, private_dim=3).eval(), make_batch()
    out = model.transfer_style({"label": batch["label"]}, {"image": batch["image"]})["image"]
    c = model.posterior({"label": batch["label"]}).mu
    s = model.encoders["image"](batch["image"]).mu[:, LATENT:]
    expected = model.likelihoods["image"].mean(model.decoders["image"](torch.cat([c, s], -1)))
    torch.testing.assert_close(out, expected)
