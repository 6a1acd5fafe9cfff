"""Config faults fail before any data is loaded, with a message that names the
key and what it accepts; gradient clipping is a validated config value.

The CLI runs with `paths.data_dir` at an empty folder: had a run got as far as
the data, it would have failed there instead ("MNIST is not in ... make data"),
and nothing may appear in that folder. (tests/test_train.py checks the
exception types of the in-process failures.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from mwvae.config import ConfigError, compose_config, validate
from mwvae.training import build_model, build_trainer
from tests.cli import run_module

ROOT = Path(__file__).resolve().parents[1]

FAULTS = [
    # Hydra rejects an unknown option of a group and lists the available ones.
    ("model=foo", ["Could not find 'model/foo'", "Available options in 'model'", "mw_vae"]),
    ("data=foo", ["Could not find 'data/foo'", "Available options in 'data'", "mnist3"]),
    (
        "experiment=foo",
        ["Could not find 'experiment/foo'", "Available options in 'experiment'", "mw_vae_mnist"],
    ),
    # validate() rejects a value of the wrong type or an unknown option, naming the key.
    (
        "model.align_weight=abc",
        ["error: model.align_weight: Value 'abc' of type 'str' could not be converted to Float"],
    ),
    ("model.alpha=1", ["error: model.alpha: MWVAE has no option 'alpha'; its options are"]),
    ("trainer.max_epochs=one", ["error: trainer.max_epochs:", "expects int or null, got 'one'"]),
    ("optimizer.lr=fast", ["error: optimizer.lr:", "expects float or Tensor, got 'fast'"]),
    # ... and values of the right type that cannot work.
    ("latent.dim=0", ["error: latent.dim: must be >= 1, got 0"]),
    ("latent.dim=-3", ["error: latent.dim: must be >= 1, got -3"]),
    (
        "trainer.gradient_clip_val=-1",
        ["error: trainer.gradient_clip_val: must be >= 0 or null (no clipping), got -1"],
    ),
    ("trainer.gradient_clip_val=abc", ["error: trainer.gradient_clip_val:", "got 'abc'"]),
    (
        "trainer.gradient_clip_algorithm=l2",
        ["error: trainer.gradient_clip_algorithm: 'l2' is not one of ['value', 'norm']"],
    ),
    (
        "evaluation.likelihood.k=5",
        ["error: evaluation.likelihood.k: must be at least 7 with 2 modalities", "got 5"],
    ),
    (
        "evaluation.likelihood.method=exact",
        ["error: evaluation.likelihood.method: 'exact' is not one of ['importance', 'ais']"],
    ),
    ("evaluation.likelihood.k=abc", ["full_key: evaluation.likelihood.k"]),
]


@pytest.mark.parametrize(("override", "expected"), FAULTS, ids=[f[0] for f in FAULTS])
def test_a_config_fault_fails_before_loading_data_and_names_the_key(tmp_path, override, expected):
    data_dir, run_dir = tmp_path / "data", tmp_path / "run"
    data_dir.mkdir()
    result = run_module(
        "mwvae.train",
        override,
        "logger=none",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={run_dir}",
        timeout=120,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr[-3000:]
    assert "make data" not in result.stderr  # the DataModule never looked for the data
    assert list(data_dir.iterdir()) == []
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "config.yaml").exists()


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("trainer.gradient_clip_val=-0.5", "trainer.gradient_clip_val"),
        ("trainer.gradient_clip_val=true", "trainer.gradient_clip_val"),
        ("trainer.gradient_clip_algorithm=norm2", "trainer.gradient_clip_algorithm"),
    ],
)
def test_bad_gradient_clipping_names_its_key(tmp_path, override, key):
    cfg = compose_config([override, f"paths.output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=key):
        validate(cfg)


class MaxGradient(pl.Callback):
    """The largest gradient value each step applied (after Lightning's clipping)."""

    def __init__(self):
        self.values: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        grads = [p.grad.abs().max() for p in pl_module.parameters() if p.grad is not None]
        self.values.append(float(torch.stack(grads).max()))


@pytest.mark.parametrize(("algorithm", "clip"), [("value", 1e-3), ("norm", 1e-2)])
def test_a_run_with_gradient_clipping_clips(tmp_path, algorithm, clip):
    cfg = compose_config(
        [
            "logger=none",
            "callbacks.progress_bar.refresh_rate=0",
            f"paths.root_dir={ROOT}",
            f"paths.output_dir={tmp_path}",
            "data.subset={train:96,val:32,test:32}",
            "data.batch_size=32",
            "trainer.max_epochs=1",
            f"trainer.gradient_clip_val={clip}",
            f"trainer.gradient_clip_algorithm={algorithm}",
        ]
    )
    validate(cfg)
    datamodule, model, trainer = (
        instantiate(cfg.data, _recursive_=False),
        build_model(cfg),
        build_trainer(cfg),
    )
    grads = MaxGradient()
    trainer.callbacks.append(grads)
    trainer.fit(model, datamodule=datamodule)
    assert trainer.global_step == 3 and len(grads.values) == 3
    # norm: the total norm is at most `clip`, so is every value.
    assert max(grads.values) <= clip * (1 + 1e-5)
    assert all(torch.isfinite(p).all() for p in model.parameters())
