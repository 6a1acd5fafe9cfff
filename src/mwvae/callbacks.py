"""Lightning callbacks of the framework."""

from __future__ import annotations

import csv
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only


class MetricHistory(pl.Callback):
    """Keeps the logged metrics as a CSV (`history.csv` in the run folder), so
    that the training-curve figures need no experiment logger.

    Training metrics are recorded every `log_every_n_steps` steps of the
    Trainer (the same steps W&B receives), validation metrics once per
    validation epoch; the `train/<term>_epoch` means go to the loggers only. The file is rewritten at every epoch end, so an
    interrupted run keeps its curves.
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
        if trainer.global_step % trainer.log_every_n_steps == 0:
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
