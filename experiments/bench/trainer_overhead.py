"""Trainer overhead: one training epoch of a model through the real Lightning
Trainer (the callbacks and settings of `make train`) against a plain PyTorch
loop over the same module, data, batch size and optimizer, in one process.

    python experiments/bench/trainer_overhead.py [--repeats 3] [hydra overrides ...]

Runs alternate (plain then Trainer, then Trainer then plain, ...) from the
same seed so that drift on a shared machine hits both; the report gives the
median samples per second of each, their ratio and the ratio of each pair, and is written as JSON and
Markdown under outputs/bench/.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import datetime
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from mwvae.config import compose_config
from mwvae.train import build_model

ROOT = Path(__file__).resolve().parents[2]


class StepClock(pl.Callback):
    """Seconds between the starts of successive training batches: the whole
    per-batch cycle of the Trainer, hooks and data fetching included."""

    def __init__(self, steps: list[float]):
        self.steps, self.last = steps, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now = time.perf_counter()
        if self.last is not None:
            self.steps.append(now - self.last)
        self.last = now


def plain_epoch(model, loader, steps: list[float]) -> None:
    optimizer = model.configure_optimizers()
    model.train()
    last = None
    for batch in loader:
        now = time.perf_counter()
        if last is not None:
            steps.append(now - last)
        last = now
        loss = model.objective(batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def trainer_epoch(model, datamodule, cfg, steps: list[float]) -> None:
    callbacks = [instantiate(spec) for name, spec in cfg.callbacks.items() if name != "checkpoint"]
    callbacks.append(StepClock(steps))
    trainer = instantiate(
        cfg.trainer,
        max_epochs=1,
        limit_val_batches=0,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=str(ROOT / "outputs" / "bench"),
    )
    trainer.fit(model, datamodule=datamodule)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=m_vae")
    args = parser.parse_args()

    cfg = compose_config(["logger=none", "paths.output_dir=outputs/bench", *args.overrides])
    datamodule = instantiate(cfg.data, _recursive_=False)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    samples = loader.size
    torch.manual_seed(0)
    plain_epoch(build_model(cfg), loader, [])  # warm-up: allocator, kernels, lazy imports

    steps: dict[str, list[float]] = {"plain": [], "trainer": []}
    runs = {
        "plain": lambda: plain_epoch(build_model(cfg), loader, steps["plain"]),
        "trainer": lambda: trainer_epoch(build_model(cfg), datamodule, cfg, steps["trainer"]),
    }
    times: dict[str, list[float]] = {"plain": [], "trainer": []}
    for repeat in range(args.repeats):
        order = ["plain", "trainer"] if repeat % 2 == 0 else ["trainer", "plain"]
        for name in order:
            torch.manual_seed(0)
            times[name].append(timed(runs[name]))
    pair_ratios = sorted(p / t for p, t in zip(times["plain"], times["trainer"], strict=True))

    rate = {name: samples / statistics.median(ts) for name, ts in times.items()}
    step = {name: statistics.median(ts) for name, ts in steps.items()}
    report = {
        "date": datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "lightning": pl.__version__,
        "model": cfg.model._target_,
        "overrides": args.overrides,
        "batch_size": cfg.data.batch_size,
        "samples_per_epoch": samples,
        "seconds": times,
        "samples_per_second": rate,
        "ratio_trainer_to_plain": rate["trainer"] / rate["plain"],
        "pair_ratios": pair_ratios,
        "median_step_seconds": step,
        "step_ratio_trainer_to_plain": step["plain"] / step["trainer"],
    }
    out_dir = ROOT / "outputs" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "trainer_overhead.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"plain loop {rate['plain']:.0f} samples/s, Trainer {rate['trainer']:.0f} samples/s: "
        f"ratio {report['ratio_trainer_to_plain']:.3f} (medians of {args.repeats}; "
        f"paired ratios {pair_ratios[0]:.3f}-{pair_ratios[-1]:.3f}); median step "
        f"{1e3 * step['plain']:.2f} ms vs {1e3 * step['trainer']:.2f} ms: "
        f"ratio {report['step_ratio_trainer_to_plain']:.3f}"
    )


if __name__ == "__main__":
    main()
