"""Trainer overhead: one training epoch of a model through the real Lightning
Trainer (the callbacks and settings of `make train`) against a plain PyTorch
loop over the same module, data, batch size and optimizer, in one process.

    python experiments/bench/trainer_overhead.py [--repeats 3] [hydra overrides ...]

Runs alternate (plain, Trainer, plain, Trainer, ...) from the same seed so
that drift on a shared machine hits both; the report gives the median
samples per second of each and their ratio, and is written as JSON and
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


def plain_epoch(model, loader) -> None:
    optimizer = model.configure_optimizers()
    model.train()
    for batch in loader:
        loss = model.objective(batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def trainer_epoch(model, datamodule, cfg) -> None:
    callbacks = [instantiate(spec) for name, spec in cfg.callbacks.items() if name != "checkpoint"]
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
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=m_vae")
    args = parser.parse_args()

    cfg = compose_config(["logger=none", "paths.output_dir=outputs/bench", *args.overrides])
    datamodule = instantiate(cfg.data, _recursive_=False)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    samples = loader.size
    torch.manual_seed(0)
    plain_epoch(build_model(cfg), loader)  # warm-up: allocator, kernels, lazy imports

    times: dict[str, list[float]] = {"plain": [], "trainer": []}
    for _ in range(args.repeats):
        torch.manual_seed(0)
        times["plain"].append(timed(lambda: plain_epoch(build_model(cfg), loader)))
        torch.manual_seed(0)
        times["trainer"].append(timed(lambda: trainer_epoch(build_model(cfg), datamodule, cfg)))

    rate = {name: samples / statistics.median(ts) for name, ts in times.items()}
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
    }
    out_dir = ROOT / "outputs" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "trainer_overhead.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"plain loop {rate['plain']:.0f} samples/s, Trainer {rate['trainer']:.0f} samples/s: "
        f"ratio {report['ratio_trainer_to_plain']:.3f} (median of {args.repeats})"
    )


if __name__ == "__main__":
    main()
