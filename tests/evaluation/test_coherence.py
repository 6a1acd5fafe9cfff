"""Coherence metrics on models whose decoders are set by hand, so that the
right value is known exactly, and the per-style keys of private codes."""

from __future__ import annotations

import torch

from mwvae.evaluation.coherence import cross_coherences, joint_coherence, readers
from mwvae.models import FMWVAE, JMVAE, MWVAE

from ..models.tiny import MODALITIES3, make_batch, make_model


def always(digit: int):
    return lambda images: torch.full((len(images),), digit)


def decode_label_always(model, digit: int):
    layer = model.decoders["label"].net[-1]
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()
        layer.bias[digit] = 10.0


def truths(batch):
    return {"image": batch["label"], "label": batch["label"], "image2": batch["label"]}


def test_joint_coherence_counts_agreement_of_every_reading():
    for model_class in (MWVAE, FMWVAE):
        model = make_model(model_class).eval()
        decode_label_always(model, 2)
        torch.manual_seed(0)
        assert joint_coherence(model, readers(model, {"image": always(2)}), n=500) == 1.0
        assert joint_coherence(model, readers(model, {"image": always(1)}), n=500) == 0.0


def test_label_to_image_coherence_is_the_share_of_matching_classes():
    model, batch = make_model(MWVAE).eval(), make_batch(n=40)
    expected = (batch["label"] == 1).float().mean().item()
    assert 0 < expected < 1
    hits = cross_coherences(model, batch, truths(batch), readers(model, {"image": always(1)}))
    assert hits["coherence/label_to_image"].float().mean().item() == expected


def test_image_to_label_coherence_reads_the_decoded_class():
    model, batch = make_model(MWVAE).eval(), make_batch(n=40)
    decode_label_always(model, 0)
    hits = cross_coherences(model, batch, truths(batch), readers(model, {}))
    assert set(hits) == {"coherence/image_to_label"}  # no classifier: images are not read
    assert hits["coherence/image_to_label"].float().mean().item() == (
        (batch["label"] == 0).float().mean().item()
    )


def test_every_subset_to_every_other_target_that_the_model_infers_from():
    batch = make_batch(n=10, modalities=MODALITIES3)
    read = {"image": always(0), "image2": always(0)}
    model = make_model(MWVAE, modalities=MODALITIES3).eval()
    hits = cross_coherences(model, batch, truths(batch), readers(model, read))
    assert len(hits) == 9  # 3 singles x 2 targets + 3 pairs x 1 target
    assert "coherence/image+label_to_image2" in hits
    jmvae = make_model(JMVAE, modalities=MODALITIES3).eval()  # no posterior for strict pairs
    hits = cross_coherences(jmvae, batch, truths(batch), readers(jmvae, read))
    assert len(hits) == 6 and not any("+" in key for key in hits)


def test_private_codes_are_scored_under_each_imputation_style():
    model, batch = make_model(FMWVAE, style="class_mean").eval(), make_batch(n=40)
    assert model.imputation_styles == ("prior", "class_mean")
    hits = cross_coherences(model, batch, truths(batch), readers(model, {"image": always(1)}))
    # The label has no private code: one key; the image's is imputed both ways.
    assert set(hits) == {
        "coherence/image_to_label",
        "coherence/label_to_image",
        "coherence_class_mean/label_to_image",
    }
    prior_only = make_model(FMWVAE, style="prior").eval()
    hits = cross_coherences(prior_only, batch, truths(batch), readers(model, {"image": always(1)}))
    assert "coherence_class_mean/label_to_image" not in hits
