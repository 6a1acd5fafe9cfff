"""Every encoder's log-variance stays within [LOGVAR_MIN, LOGVAR_MAX], however
extreme its input or weights: exp() stays finite and the KL well defined."""

from __future__ import annotations

import pytest
import torch

from mwvae.gaussians import LOGVAR_MAX, LOGVAR_MIN, kl_to_standard_normal
from mwvae.nets import CategoricalEncoder, ConvEncoder, MLPEncoder
from mwvae.nets.joint import JointEncoder

SCALES = [1e6, -1e6, 1e-30, 0.0]


def assert_bounded(q) -> None:
    assert torch.isfinite(q.logvar).all()
    assert (q.logvar >= LOGVAR_MIN).all() and (q.logvar <= LOGVAR_MAX).all()
    assert torch.isfinite(q.logvar.exp()).all() and torch.isfinite(kl_to_standard_normal(q)).all()


def assert_clamped(qs) -> None:
    """Extreme inputs drive the head past the bounds: the clamp is what holds."""
    logvars = torch.cat([q.logvar.flatten() for q in qs])
    assert (logvars == LOGVAR_MIN).any() and (logvars == LOGVAR_MAX).any()


@pytest.mark.parametrize(
    ("encoder", "shape"),
    [
        (MLPEncoder([1, 28, 28], hidden_dims=[32], latent_dim=8), (16, 1, 28, 28)),
        (ConvEncoder([3, 32, 32], channels=[8, 16], latent_dim=8), (16, 3, 32, 32)),
    ],
    ids=["mlp", "conv"],
)
def test_extreme_inputs_give_bounded_logvars(encoder, shape):
    torch.manual_seed(0)
    qs = [encoder(scale * torch.randn(shape)) for scale in SCALES]
    for q in qs:
        assert_bounded(q)
    assert_clamped(qs)


def test_extreme_categorical_embeddings_give_bounded_logvars():
    torch.manual_seed(0)
    encoder = CategoricalEncoder(num_classes=10, hidden_dims=[32], latent_dim=8)
    labels = torch.arange(10).repeat(4)
    qs = []
    for scale in SCALES:
        with torch.no_grad():
            encoder.embed.weight.normal_().mul_(scale)  # weights drifted to extremes
        qs.append(encoder(labels))
    for q in qs:
        assert_bounded(q)
    assert_clamped(qs)


def test_extreme_inputs_give_bounded_joint_logvars():
    torch.manual_seed(0)
    encoder = JointEncoder(
        {
            "image": {"_target_": "mwvae.nets.MLPEncoder", "input_shape": [4], "hidden_dims": [8]},
            "label": {
                "_target_": "mwvae.nets.CategoricalEncoder",
                "num_classes": 3,
                "hidden_dims": [8],
            },
        },
        feature_dim=8,
        hidden_dims=[16],
        latent_dim=8,
    )
    labels = torch.arange(3).repeat(6)
    qs = [encoder({"image": scale * torch.randn(18, 4), "label": labels}) for scale in SCALES]
    for q in qs:
        assert_bounded(q)
    assert_clamped(qs)
