"""Every option of every config group composes against its schema."""

from __future__ import annotations

import pytest

from mwvae.config import CONF_DIR, compose_config

GROUPS = ["model", "data", "latent", "trainer", "logger", "callbacks", "experiment", "debug"]
OPTIONS = [
    (group, path.stem)
    for group in GROUPS
    for path in sorted((CONF_DIR / group).glob("*.yaml"))
    if not (group == "trainer" and path.stem == "default")
]


@pytest.mark.parametrize(("group", "option"), OPTIONS)
def test_every_option_composes(tmp_path, group, option):
    cfg = compose_config([f"{group}={option}", f"paths.output_dir={tmp_path}"])
    assert cfg.latent.dim > 0
    assert cfg.model._target_.startswith("mwvae.models.")


def test_defaults_are_mw_vae_on_mnist_on_the_cpu(tmp_path):
    cfg = compose_config([f"paths.output_dir={tmp_path}"])
    assert cfg.model._target_ == "mwvae.models.MWVAE" and cfg.model.align_weight > 0
    assert cfg.data._target_ == "mwvae.data.MNISTDataModule"
    assert cfg.trainer.accelerator == "cpu"
    assert cfg.logger.wandb.mode in {"offline", "disabled", "online"}
    assert compose_config(["model=m_vae", f"paths.output_dir={tmp_path}"]).model.align_weight == 0
