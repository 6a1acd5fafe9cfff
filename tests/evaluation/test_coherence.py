"""Coherence metrics on models whose decoders are set by hand, so that the
right value is known exactly."""

from __future__ import annotations

import torch

from mwvae.evaluation.coherence import (
    image_to_label_coherence,
    joint_coherence,
    label_to_image_coherence,
)
from mwvae.models import FMWVAE, MWVAE

from ..models.tiny import make_batch, make_model


def always(digit: int):
    return lambda images: torch.full((len(images),), digit)


def decode_label_always(model, digit: int):
    layer = model.decoders["label"].net[-1]
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()
        layer.bias[digit] = 10.0


def test_joint_coherence_counts_agreement_of_classifier_and_decoded_label():
    for model_class in (MWVAE, FMWVAE):
        model = make_model(model_class).eval()
        decode_label_always(model, 2)
        torch.manual_seed(0)
        assert joint_coherence(model, always(2), n=500) == 1.0
        assert joint_coherence(model, always(1), n=500) == 0.0


def test_label_to_image_coherence_is_the_share_of_matching_digits():
    model, batch = make_model(MWVAE).eval(), make_batch(n=40)
    expected = (batch["label"] == 1).float().mean().item()
    assert 0 < expected < 1
    assert label_to_image_coherence(model, batch, always(1)) == expected


def test_image_to_label_coherence_reads_the_decoded_class():
    model, batch = make_model(MWVAE).eval(), make_batch(n=40)
    decode_label_always(model, 0)
    assert image_to_label_coherence(model, batch) == (batch["label"] == 0).float().mean().item()
