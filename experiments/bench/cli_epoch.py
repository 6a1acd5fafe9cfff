"""The CLI's epoch as a user pays it, against an independent plain PyTorch
loop of the same model with the same validation.

`python -m mwvae.train` runs in its own process (validation with its
coherences, checkpoints, the metric history, the progress bar; no evaluation,
no figures, no logger) and reports `time/seconds_per_epoch`: fit's wall time
(Lightning's `Timer`, from the first epoch's start) per epoch. The plain loop,
in this process, builds the same model and data from the same config and runs
each epoch as a loop over the same batches (objective, backward, the same
Adam) followed by the model's own `validation_step` on every validation
batch (the loss terms and the coherences), without Lightning. The two
alternate, CLI first, so that drift on a shared machine hits both.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from hydra.utils import instantiate

from experiments.bench.common import ROOT, TINY_SUBSET, build, compose, table, train_step

TARGET = 0.90  # the CLI's epoch within 10% of the plain loop's
MODEL = "mw_vae"  # `make train`'s
EPOCHS, REPEATS = 2, 2
TINY_OVERRIDES = [f"data.subset={TINY_SUBSET}"]
CLI_OPTIONS = ["evaluate=false", "figures=false", "logger=none"]


def cli_seconds_per_epoch(overrides: list[str], epochs: int, run_dir: Path) -> float:
    """`time/seconds_per_epoch` of a `python -m mwvae.train` run with these overrides."""
    command = [
        sys.executable,
        "-m",
        "mwvae.train",
        f"model={MODEL}",
        f"trainer.max_epochs={epochs}",
        f"threads={torch.get_num_threads()}",
        f"hydra.run.dir={run_dir}",
        *CLI_OPTIONS,
        *overrides,
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return json.loads((run_dir / "metrics.json").read_text())["time/seconds_per_epoch"]


def plain_epochs(overrides: list[str], epochs: int, output_dir: str) -> dict[str, float]:
    """Seconds per epoch of the plain loop (training and validation) and of its parts."""
    cfg = compose(MODEL, f"paths.output_dir={output_dir}", *overrides)
    datamodule = instantiate(cfg.data, _recursive_=False)
    datamodule.setup("fit")
    model = build(cfg)
    optimizer = model.configure_optimizers()
    training = validation = 0.0
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        for batch in datamodule.train_dataloader():
            train_step(model, optimizer, batch)
        middle = time.perf_counter()
        model.eval()
        with torch.no_grad(), warnings.catch_warnings():
            # Its `self.log` finds no Trainer, says so and returns: nothing else differs.
            warnings.filterwarnings("ignore", message="You are trying to `self.log")
            for index, batch in enumerate(datamodule.val_dataloader()):
                model.validation_step(batch, index)
        training, validation = training + middle - start, validation + time.perf_counter() - middle
    return {
        "seconds_per_epoch": (training + validation) / epochs,
        "training_seconds_per_epoch": training / epochs,
        "validation_seconds_per_epoch": validation / epochs,
    }


def run(tiny: bool = False) -> dict:
    overrides = TINY_OVERRIDES if tiny else []
    epochs, repeats = (1, 1) if tiny else (EPOCHS, REPEATS)
    cli, plain = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(repeats):
            cli.append(cli_seconds_per_epoch(overrides, epochs, Path(scratch) / f"cli{repeat}"))
            plain.append(plain_epochs(overrides, epochs, scratch))
    cli_epoch = statistics.median(cli)
    plain_epoch = statistics.median(p["seconds_per_epoch"] for p in plain)
    return {
        "target": TARGET,
        "model": MODEL,
        "overrides": overrides,
        "epochs": epochs,
        "threads": torch.get_num_threads(),
        "cli_seconds_per_epoch": cli,
        "plain": plain,
        "ratio": plain_epoch / cli_epoch,
    }


def to_markdown(results: dict) -> str:
    plain = results["plain"]
    cells = [
        results["model"],
        f"{statistics.median(p['training_seconds_per_epoch'] for p in plain):.2f}",
        f"{statistics.median(p['validation_seconds_per_epoch'] for p in plain):.2f}",
        f"{statistics.median(p['seconds_per_epoch'] for p in plain):.2f}",
        f"{statistics.median(results['cli_seconds_per_epoch']):.2f}",
        f"{results['ratio']:.3f}" + ("" if results["ratio"] >= results["target"] else " (missed)"),
    ]
    header = (
        "model | plain training s/epoch | plain validation s/epoch | plain s/epoch | "
        "CLI s/epoch | ratio"
    )
    runs = len(results["cli_seconds_per_epoch"])
    return (
        "\n".join(
            [
                "## The CLI's epoch against a plain loop with the same validation",
                "",
                f"`python -m mwvae.train model={results['model']}` ({results['epochs']} epochs, "
                f"{results['threads']} threads, validation, checkpoints, history and progress bar "
                "as a user pays them; no evaluation) against a plain PyTorch loop of the same model, "
                "batches and Adam that validates as the CLI does (`experiments/bench/cli_epoch.py`); "
                f"median of {runs} alternating runs each. Target: ratio >= {results['target']}.",
                "",
                *table(header, [cells]),
            ]
        )
        + "\n"
    )
