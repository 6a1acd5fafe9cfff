"""Test-only callback for tests/test_resume.py: the training process sends
itself a signal right after a given optimizer step, so a run is killed at an
exact point without sleeping or polling."""

from __future__ import annotations

import os
import signal

import pytorch_lightning as pl


class SignalAfterStep(pl.Callback):
    """Sends `signal_name` to this process once `step` optimizer steps are
    done, in a run that did not resume (a resumed run is left alone)."""

    def __init__(self, step: int, signal_name: str = "SIGKILL"):
        self.step, self.signal = step, getattr(signal, signal_name)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step and trainer.ckpt_path is None:
            os.kill(os.getpid(), self.signal)
