from types import SimpleNamespace

import pytest
import torch

from mwvae.gaussians import barycenter, kl_to_standard_normal, w2_squared
from mwvae.models import MWVAE

from .tiny import make_batch
from .tiny import make_model as make_any_model


def make_model(**kwargs) -> MWVAE:
    return make_any_model(MWVAE, **kwargs)


def test_posterior_of_one_modality_is_its_encoder_and_of_both_the_barycenter():
    model, batch = make_model(), make_batch()
    q_image = model.encoders["image"](batch["image"])
    q_label = model.encoders["label"](batch["label"])
    torch.testing.assert_close(model.posterior({"image": batch["image"]}).mu, q_image.mu)
    joint = model.posterior(batch)
    expected = barycenter([q_image, q_label])
    torch.testing.assert_close(joint.mu, (q_image.mu + q_label.mu) / 2)
    torch.testing.assert_close(joint.std, (q_image.std + q_label.std) / 2)
    torch.testing.assert_close(joint.logvar, expected.logvar)


def test_reconstruct_decodes_every_modality_from_any_observed_subset():
    model, batch = make_model(), make_batch()
    for observed in ({"image": batch["image"]}, {"label": batch["label"]}, batch):
        out = model.reconstruct(observed)
        assert out["image"].shape == (5, 1, 4, 4)
        assert ((out["image"] >= 0) & (out["image"] <= 1)).all()
        torch.testing.assert_close(out["label"].sum(-1), torch.ones(5))
    # The mean is decoded unless asked to sample.
    torch.testing.assert_close(model.reconstruct(batch)["label"], model.reconstruct(batch)["label"])


def test_mw_vae_loss_is_factorized_elbo_plus_weighted_w2():
    model, batch = make_model(align_weight=3.0, beta=0.5), make_batch()
    torch.manual_seed(7)
    terms = model.objective(batch)

    # Recompute independently with the same noise.
    torch.manual_seed(7)
    q = {m: model.encoders[m](x) for m, x in batch.items()}
    z = {m: q[m].rsample() for m in ("image", "label")}
    bce = (
        torch.nn.functional.binary_cross_entropy_with_logits(
            model.decoders["image"](z["image"]), batch["image"], reduction="sum"
        )
        / 5
    )
    ce = 2.0 * torch.nn.functional.cross_entropy(
        model.decoders["label"](z["label"]), batch["label"]
    )
    kl = sum(kl_to_standard_normal(q[m]).mean() for m in q)
    w2 = w2_squared(q["image"], q["label"]).mean()
    torch.testing.assert_close(terms.loss, bce + ce + 0.5 * kl + 3.0 * w2)
    torch.testing.assert_close(terms.w2, w2)
    assert set(terms.as_metrics()) == {
        "loss",
        "elbo",
        "w2",
        "recon/image",
        "recon/label",
        "kl/image",
        "kl/label",
    }


def test_m_vae_logs_w2_without_optimising_it():
    model, batch = make_model(align_weight=0.0), make_batch()
    terms = model.objective(batch)
    assert terms.w2 is not None
    encoder_weight = model.encoders["label"].head.linear.weight
    (grad,) = torch.autograd.grad(terms.w2, encoder_weight, retain_graph=True)
    assert grad.abs().sum() > 0  # W2 depends on the encoders...
    aligned_model = make_model(align_weight=1.0)  # same initial weights
    torch.manual_seed(0)
    loss_only = model.objective(batch).loss
    torch.manual_seed(0)
    aligned = aligned_model.objective(batch)
    torch.testing.assert_close(aligned.loss - aligned.w2, loss_only)  # ...but only MW-VAE adds it


def test_cross_modal_coherence_names_source_and_target():
    model, batch = make_model(), make_batch()
    accuracy = model.cross_modal_coherence(batch)
    assert set(accuracy) == {"coherence/image_to_label"}
    assert 0.0 <= accuracy["coherence/image_to_label"].item() <= 1.0


def test_unknown_or_missing_modalities_fail_clearly():
    model = make_model()
    with pytest.raises(KeyError, match="caption"):
        model.posterior({"caption": torch.zeros(2, 3)})
    with pytest.raises(ValueError, match="at least one"):
        model.posterior({})


def test_warm_up_anneals_training_only_so_validation_losses_compare_across_epochs():
    model = make_model(beta=2.0, kl_warmup_epochs=4)
    model._trainer = SimpleNamespace(num_training_batches=10)  # what beta_now reads of it
    for step, annealed in ((0, 0.0), (10, 0.5), (20, 1.0), (40, 2.0), (400, 2.0)):
        model._trainer.global_step = step
        model.train()
        assert model.beta_now == pytest.approx(annealed)  # beta * step / (4 epochs x 10)
        model.eval()  # validation and test: the target beta at every step
        assert model.beta_now == 2.0
