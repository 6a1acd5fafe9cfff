"""A non-finite training loss stops the run: the error names the step and the
terms, and the state from before the bad update is saved and loads."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from mwvae import load_model
from mwvae.callbacks import NonFiniteGuard, NonFiniteLossError
from mwvae.config import compose_config
from mwvae.training import build_model, build_trainer
from tests.cli import run_module

ROOT = Path(__file__).resolve().parents[1]
SMALL = [
    "logger=none",
    "callbacks.progress_bar.refresh_rate=0",
    f"paths.root_dir={ROOT}",
    "data.subset={train:256,val:32,test:32}",
    "data.batch_size=32",
    "trainer.max_epochs=1",
    "figures=false",
    "evaluate=false",
    *(
        f"data.modalities.{m}.{net}.hidden_dims=[32]"
        for m in ("image", "label")
        for net in ("encoder", "decoder")
    ),
]


class PoisonBatch(pl.Callback):
    """Sets one image pixel to NaN in the batch of training step `step`, and
    keeps the parameters as they were when that step started."""

    def __init__(self, step: int):
        self.step = step
        self.params_before: dict[str, torch.Tensor] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            self.params_before = {
                name: p.detach().clone() for name, p in pl_module.state_dict().items()
            }
            batch["image"] = batch["image"].clone()
            batch["image"].view(-1)[0] = math.nan


def fit_poisoned(tmp_path, step, *overrides):
    cfg = compose_config([*SMALL, f"paths.output_dir={tmp_path}", *overrides])
    datamodule, model, trainer = (
        instantiate(cfg.data, _recursive_=False),
        build_model(cfg),
        build_trainer(cfg),
    )
    poison = PoisonBatch(step)
    trainer.callbacks.append(poison)
    with pytest.raises(NonFiniteLossError) as raised:
        trainer.fit(model, datamodule=datamodule)
    return str(raised.value), poison, trainer


@pytest.mark.parametrize("model", ["mw_vae", "mvae_poe"])
def test_a_nan_in_a_batch_stops_training_at_its_step_and_saves_the_last_good_state(tmp_path, model):
    message, poison, trainer = fit_poisoned(tmp_path, 3, f"model={model}")
    path = tmp_path / "checkpoints" / "nonfinite-step3.ckpt"
    assert message.startswith("step 3: the training loss is not finite (nan)")
    assert "recon/image=nan" in message
    assert str(path) in message and "trainer.gradient_clip_val" in message
    assert trainer.global_step == 3  # the bad update was never made

    loaded = load_model(path)  # weights_only
    saved = loaded.state_dict()
    assert set(saved) == set(poison.params_before)
    for name, before in poison.params_before.items():
        assert torch.isfinite(saved[name]).all(), name
        torch.testing.assert_close(saved[name], before, rtol=0, atol=0, msg=name)
    assert torch.load(path, weights_only=True)["global_step"] == 3


def test_at_logging_steps_only_a_nan_is_caught_at_the_next_logging_step(tmp_path):
    message, _, _ = fit_poisoned(
        tmp_path, 1, "callbacks.nonfinite.check=log_steps", "trainer.log_every_n_steps=4"
    )
    # Step 1's update spread NaN into the parameters; step 3 is the next logging step.
    assert message.startswith("step 3: the training loss is not finite (nan)")
    assert "Checked every 4 steps only" in message
    assert (tmp_path / "checkpoints" / "nonfinite-step3.ckpt").exists()


def test_auto_checks_every_step_on_the_cpu_and_at_logging_steps_elsewhere():
    guard = NonFiniteGuard("unused")
    assert guard.mode(SimpleNamespace(device=torch.device("cpu"))) == "every_step"
    meta = SimpleNamespace(device=torch.device("meta"))  # stands for cuda, mps, ...
    assert guard.mode(meta) == "log_steps"
    assert NonFiniteGuard("unused", check="every_step").mode(meta) == "every_step"
    with pytest.raises(ValueError, match="check: 'sometimes' is not one of"):
        NonFiniteGuard("unused", check="sometimes")


def test_the_cli_reports_a_nan_loss_as_an_error_without_a_traceback(tmp_path):
    result = run_module(
        "mwvae.train",
        *SMALL,
        f"hydra.run.dir={tmp_path}",
        "+callbacks.poison._target_=tests.test_nonfinite.PoisonBatch",
        "+callbacks.poison.step=2",
    )
    assert result.returncode == 1
    path = tmp_path / "checkpoints" / "nonfinite-step2.ckpt"
    assert "error: step 2: the training loss is not finite (nan)" in result.stderr
    assert "recon/image=nan" in result.stderr and str(path) in result.stderr
    assert "Traceback" not in result.stderr
    assert path.exists()
