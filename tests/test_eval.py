"""The evaluation suite on every model: each metric it admits, and the same
numbers twice for the same seed."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate

from mwvae.config import compose_config
from mwvae.eval import evaluate
from mwvae.train import build_model

from .test_train import MODELS, QUIET

SMALL = {"likelihood": {"k": 10, "num_samples": 20}, "joint_samples": 200, "figures": False}


def built(tmp_path, model, data="mnist"):
    cfg = compose_config(
        [
            *QUIET,
            f"paths.output_dir={tmp_path}",
            f"model={model}",
            f"data={data}",
            "data.subset={train:500,val:100,test:200}",
        ]
    )
    return build_model(cfg), instantiate(cfg.data, _recursive_=False)


@pytest.mark.parametrize("model", MODELS)
def test_every_model_gets_the_metrics_it_admits(tmp_path, model):
    net, datamodule = built(tmp_path, model)
    metrics = evaluate(net, datamodule, SMALL, tmp_path)
    assert all(value == value for value in metrics.values())  # no NaN
    if model == "vae":
        assert set(metrics) == {
            "test/recon_mse/image_only/image",
            "test/loglik/image",
            "test/probe/image",
        }
    elif model == "m_vae_joint":  # infers only from both: no cross-modal metric, no probe
        assert "test/loglik/joint" in metrics and "test/coherence/joint" in metrics
        assert not any(k.startswith(("test/coherence/image", "test/probe")) for k in metrics)
    else:
        for key in (
            "coherence/image_to_label",
            "coherence/label_to_image",
            "coherence/joint",
            "loglik/joint",
            "loglik/image",
            "loglik/label",
            "loglik/image_given_label",
            "probe/image",
            "w2",
            "recon_mse/label_only/image",
        ):
            assert f"test/{key}" in metrics, key


def test_same_checkpoint_same_seed_same_numbers(tmp_path):
    net, datamodule = built(tmp_path, "fmw_vae", "mnist3")
    first = evaluate(net, datamodule, {**SMALL, "figures": True}, tmp_path)
    second = evaluate(net, datamodule, SMALL, tmp_path)
    assert first == second
    assert "test/coherence/image_to_image2" in first
    assert "test/style/mse_label_plus_own_style" in first
    for name in ("reconstructions_all", "latent_projection", "style_transfer"):
        assert (tmp_path / "figures" / f"{name}.png").exists()
