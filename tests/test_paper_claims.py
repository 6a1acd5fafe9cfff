"""The acceptance claims of `make train`, on the full MNIST (slow: ~12 min on
2 cores). Run with `make test-slow`."""

from __future__ import annotations

import pytest

from mwvae.training import train

from .test_train import config

pytestmark = pytest.mark.slow


def test_mw_vae_infers_labels_from_images_and_aligns_far_better_than_m_vae(tmp_path):
    mw_vae, _ = train(config(tmp_path / "mw_vae", "model=mw_vae", "figures=false"))
    m_vae, _ = train(config(tmp_path / "m_vae", "model=m_vae", "figures=false"))
    assert mw_vae["test/coherence/image_to_label"] >= 0.93
    assert mw_vae["test/w2"] * 10 <= m_vae["test/w2"]
