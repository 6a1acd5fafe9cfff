"""Lightning callbacks of the framework."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities import rank_zero_only


def logs_training_step(trainer: pl.Trainer, steps_done: int) -> bool:
    """Whether the training step that makes `steps_done` steps logs its
    metrics: every `log_every_n_steps` (the steps the loggers write) and each
    epoch's last, so that an epoch shorter than the interval has a point."""
    return trainer.is_last_batch or steps_done % trainer.log_every_n_steps == 0


class MetricHistory(pl.Callback):
    """Keeps the logged metrics as a CSV (`history.csv` in the run folder), so
    that the training-curve figures need no experiment logger.

    Training metrics are recorded at the steps the model logs them
    (`logs_training_step`), validation metrics once per validation epoch;
    the `train/<term>_epoch` means go to the loggers only. The file is
    rewritten at every epoch end, so an interrupted run keeps its curves.
    """

    def __init__(self, path: str):
        self.path = Path(path)
        self.rows: list[dict[str, float]] = []

    def _record(self, trainer: pl.Trainer, prefix: str) -> None:
        values = {
            name: float(value)
            for name, value in trainer.callback_metrics.items()
            if name.startswith(prefix) and not name.endswith("_epoch") and value.numel() == 1
        }
        if values:
            self.rows.append(
                {"epoch": trainer.current_epoch, "step": trainer.global_step, **values}
            )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if logs_training_step(trainer, trainer.global_step):  # counted after the step
            self._record(trainer, "train/")

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._record(trainer, "val/")

    @rank_zero_only
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.write()

    def write(self) -> None:
        columns = list(dict.fromkeys(key for row in self.rows for key in row))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict) -> None:
        self.rows = list(state_dict.get("rows", []))


class InterruptedCheckpoint(pl.Callback):
    """Saves the whole training state to `<dirpath>/<filename>.ckpt` when fit
    stops on an exception: SIGTERM (SLURM pre-emption; Lightning raises
    SIGTERMException after the batch under way), Ctrl-C, a crash. Mid-epoch
    included: the loop counters and the training loader's position are in it
    (see `InMemoryLoader.state_dict`). Only a fit that trained past where it
    started saves: a failure before the first step (bad data, a bad
    checkpoint) leaves no untrained state to resume from. A fit that completes
    removes the file. `ckpt_path=last` resumes from the furthest-trained
    checkpoint (`mwvae.checkpoints.resume_from`).

    Lightning's `OnExceptionCheckpoint` saves the same way, but its presence
    turns `fit(ckpt_path=None)` into resuming from the folder's newest
    checkpoint; with this one `ckpt_path: null` keeps meaning a fresh start.
    Exceptions of `validate`/`test` save nothing (the model then holds the
    best checkpoint's weights, not the training state).
    """

    def __init__(self, dirpath: str, filename: str = "interrupted"):
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self.started_at: int | None = None  # the global step fit started (or resumed) from

    def on_train_start(self, trainer, pl_module) -> None:
        self.started_at = trainer.global_step

    def on_exception(self, trainer, pl_module, exception) -> None:
        progressed = self.started_at is not None and trainer.global_step > self.started_at
        if trainer.state.fn == TrainerFn.FITTING and progressed:
            trainer.save_checkpoint(self.path)

    def teardown(self, trainer, pl_module, stage) -> None:
        if stage == TrainerFn.FITTING:  # reached only when fit completed
            trainer.strategy.remove_checkpoint(self.path)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the message names the step,
    the non-finite terms and where the last good state was saved."""


NONFINITE_CHECKS = ("auto", "every_step", "log_steps")


class NonFiniteGuard(pl.Callback):
    """Stops training when the loss is not finite, after saving the state from
    before the bad update.

    It runs after the backward pass and before the optimizer step, so the
    parameters it saves (`<dirpath>/nonfinite-step<N>.ckpt`) are those the
    previous step left. It reads the terms of the step's objective that the
    model keeps (`last_training_terms`, tensors).

    Reading a value makes the host wait for an accelerator, so `check` says when:
    `every_step`; `log_steps`, only at the logging steps (`logs_training_step`,
    which read the metrics anyway), where the
    first bad step may lie up to that many steps earlier and the saved state
    may already be non-finite; `auto`, every step on the CPU (a CPU tensor's
    value is there without waiting) and at logging steps on an accelerator.
    """

    def __init__(self, dirpath: str, check: str = "auto"):
        if check not in NONFINITE_CHECKS:
            raise ValueError(f"check: {check!r} is not one of {list(NONFINITE_CHECKS)}")
        self.dirpath = Path(dirpath)
        self.check = check

    def mode(self, pl_module: pl.LightningModule) -> str:
        if self.check != "auto":
            return self.check
        return "every_step" if pl_module.device.type == "cpu" else "log_steps"

    def due(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> bool:
        if self.mode(pl_module) == "every_step":
            return True
        return logs_training_step(trainer, trainer.global_step + 1)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        terms = pl_module.last_training_terms  # pl_module: a mwvae.models.MultimodalVAE
        if not terms or not self.due(trainer, pl_module):
            return
        finite = math.isfinite(terms["loss"].item())  # the one read (the loss is a scalar)
        # Every rank stops together (a rank alone in save_checkpoint would wait forever).
        if not trainer.strategy.reduce_boolean_decision(not finite, all=False):
            return
        step = trainer.global_step
        path = self.dirpath / f"nonfinite-step{step}.ckpt"
        trainer.save_checkpoint(path, weights_only=False)  # resumable: optimizer state too
        raise NonFiniteLossError(self.message(step, terms, path, pl_module, trainer))

    def message(self, step, terms, path, pl_module, trainer) -> str:
        loss = float(terms["loss"].detach().float().mean())
        bad = [
            f"{name}={float(value.detach().float().mean()):g}"
            for name, value in terms.items()
            if name not in ("loss", "elbo") and not bool(torch.isfinite(value.detach()).all())
        ]
        text = (
            f"step {step}: the training loss is not finite ({loss:g}); "
            f"non-finite terms: {', '.join(bad) or 'none (check the gradients and the data)'}. "
            f"The last good state (the parameters before this step's update) is saved at {path}. "
            "Lower the learning rate (optimizer.lr), set trainer.gradient_clip_val "
            "(e.g. 1.0), or look for nan/inf values in the data."
        )
        if self.mode(pl_module) == "log_steps":
            text += (
                f" Checked every {trainer.log_every_n_steps} steps only: the first bad step may "
                "be earlier and the saved state already non-finite; "
                "callbacks.nonfinite.check=every_step checks every step."
            )
        return text
