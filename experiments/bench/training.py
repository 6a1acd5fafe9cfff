"""Training throughput: each model through the Lightning Trainer against a
plain PyTorch loop (same class, data, batch size and optimizer).

Inside one epoch of `Trainer.fit` (the callbacks of `make train` but the
checkpoint), a callback times one step of the plain loop on a twin model
before each Trainer step, so that drift on a shared machine hits both alike.
Trainer time = the wall time of `fit` minus the plain steps: everything the
Trainer adds (setup, hooks, logging, progress bar). The floor: the same for
the fastest model with a bare Trainer (no callbacks, no progress bar) over a
module whose step is only its objective's loss, what Lightning's own loop
costs any module; the rest of the overhead is the framework's.
"""

from __future__ import annotations

import statistics
import tempfile
import time

import pytorch_lightning as pl
from hydra.utils import instantiate

from experiments.bench.common import build, compose, table, train_step
from mwvae.config.catalog import model_names

TARGET = 0.95
TINY_OVERRIDES = ["data.subset.train=512"]
# The Trainer's cost is per step, so it shrinks with larger batches: measured
# again at this batch size for the fastest models of the first pass.
LARGE_BATCH, LARGE_BATCH_MODELS = 512, 2


class LockstepPlainLoop(pl.Callback):
    """One timed step of a plain PyTorch loop before every Trainer step."""

    def __init__(self, model: pl.LightningModule, loader):
        self.model, self.optimizer = model, model.configure_optimizers()
        self.batches = iter(loader)
        self.seconds, self.steps = 0.0, 0

    def plain_step(self) -> None:
        train_step(self.model, self.optimizer, next(self.batches))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        start = time.perf_counter()
        self.plain_step()
        self.seconds += time.perf_counter() - start
        self.steps += 1


def bare(model: pl.LightningModule) -> pl.LightningModule:
    """The model with the least a Lightning step needs: the objective's loss
    (no reseeding, no epoch means, no logging)."""
    model.training_step = lambda batch, batch_idx: model.objective(batch).loss
    model.on_train_batch_start = lambda batch, batch_idx: None
    model.on_train_epoch_end = lambda: None
    return model


def measure(model_name: str, overrides: list[str], output_dir: str, floor: bool = False) -> dict:
    """One epoch of `model_name`, Trainer and plain loop in lockstep (`floor`:
    a bare Trainer over a bare module)."""
    cfg = compose(model_name, f"paths.output_dir={output_dir}", *overrides)
    datamodule = instantiate(cfg.data, _recursive_=False)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    # A few plain steps first, so that neither side pays for lazy
    # initialisation (allocator, kernels) the other does not.
    warm = LockstepPlainLoop(build(cfg), loader)
    for _ in range(min(10, len(loader))):
        warm.plain_step()

    plain = LockstepPlainLoop(build(cfg), datamodule.train_dataloader())
    callbacks = (
        []
        if floor
        else [instantiate(spec) for name, spec in cfg.callbacks.items() if name != "checkpoint"]
    )
    trainer = instantiate(
        cfg.trainer,
        max_epochs=1,
        limit_val_batches=0,
        callbacks=[*callbacks, plain],
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=not floor,
        default_root_dir=output_dir,
    )
    model = bare(build(cfg)) if floor else build(cfg)
    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    trainer_seconds = time.perf_counter() - start - plain.seconds
    samples = loader.size
    return {
        "steps": plain.steps,
        "samples": samples,
        "batch_size": cfg.data.batch_size,
        "plain_seconds": plain.seconds,
        "trainer_seconds": trainer_seconds,
        "plain_samples_per_s": samples / plain.seconds,
        "trainer_samples_per_s": samples / trainer_seconds,
        "ratio": plain.seconds / trainer_seconds,
        "trainer_overhead_ms_per_step": 1e3 * (trainer_seconds - plain.seconds) / plain.steps,
    }


def run(tiny: bool = False, models: list[str] | None = None) -> dict:
    """Lockstep throughput of each model (default: the catalog's; tiny: its first
    two), then again at LARGE_BATCH for the fastest."""
    models = models or model_names()[: 2 if tiny else None]
    overrides = TINY_OVERRIDES if tiny else []
    with tempfile.TemporaryDirectory() as output_dir:
        results = {name: measure(name, overrides, output_dir) for name in models}
        fastest = sorted(results, key=lambda n: -results[n]["plain_samples_per_s"])
        large = [*overrides, f"data.batch_size={LARGE_BATCH}"]
        large_batch = {n: measure(n, large, output_dir) for n in fastest[:LARGE_BATCH_MODELS]}
        floor = {fastest[0]: measure(fastest[0], overrides, output_dir, floor=True)}
    return {
        "target": TARGET,
        "overrides": overrides,
        "models": results,
        "large_batch": large_batch,
        "floor": floor,
    }


def at_floor(result: dict, floor_ms: float) -> float:
    """The ratio the Trainer would reach if it added only Lightning's floor
    (`floor_ms` a step) to this model's plain step: the most a module can get
    from Lightning's loop at this batch size."""
    plain_ms = 1e3 * result["plain_seconds"] / result["steps"]
    return plain_ms / (plain_ms + floor_ms)


def model_table(models: dict[str, dict], target: float, floor_ms: float | None = None) -> list[str]:
    rows = [
        [
            name,
            f"{r['plain_samples_per_s']:.0f}",
            f"{r['trainer_samples_per_s']:.0f}",
            f"{r['ratio']:.3f}" + ("" if r["ratio"] >= target else " (missed)"),
            f"{r['trainer_overhead_ms_per_step']:+.2f}",
            *([] if floor_ms is None else [f"{at_floor(r, floor_ms):.3f}"]),
        ]
        for name, r in models.items()
    ]
    header = "model | plain samples/s | Trainer samples/s | ratio | Trainer overhead ms/step"
    if floor_ms is not None:
        header += " | ratio at Lightning's floor"
    return table(header, rows)


def to_markdown(results: dict) -> str:
    models, target = results["models"], results["target"]
    first = next(iter(models.values()))
    floor_name, floor = next(iter(results.get("floor", {}).items()), (None, None))
    floor_ms = None if floor is None else floor["trainer_overhead_ms_per_step"]
    missed = {n: r["ratio"] for n, r in models.items() if r["ratio"] < target}
    gaps = ", ".join(f"{n} by {target - r:.3f}" for n, r in missed.items())
    lines = [
        "## Training throughput: Trainer against a plain PyTorch loop",
        "",
        f"One epoch of MNIST ({first['samples']} examples, batch {first['batch_size']}, "
        f"{first['steps']} steps) per model, the Trainer and a plain loop in lockstep "
        f"(`experiments/bench/training.py`). Target: ratio >= {target}."
        + (
            ""
            if floor is None
            else " Ratio at Lightning's floor: the plain step plus only what a bare Trainer "
            f"adds to any module ({floor_ms:+.2f} ms a step, measured below), the most this "
            "model can reach inside Lightning's loop at this batch size."
        ),
        "",
        *model_table(models, target, floor_ms),
        "",
        f"Lowest ratio {min(r['ratio'] for r in models.values()):.3f}. "
        + (f"Missed: {gaps}." if missed else f"Every model reaches the target ({target})."),
    ]
    if missed:
        overhead = statistics.median(r["trainer_overhead_ms_per_step"] for r in models.values())
        lines += [
            "",
            f"Why: the Trainer adds about {overhead:.1f} ms per step (median over the models) "
            "whatever the model: Lightning's per-step Python (the optimizer closure, hook "
            "dispatches, the batch fetcher) and the garbage collections it triggers. That is a "
            "larger share of the faster models' steps; being per step, it shrinks with larger "
            "batches.",
        ]
    if floor is not None:
        ours = models[floor_name]["trainer_overhead_ms_per_step"] - floor_ms
        beyond = [n for n in missed if at_floor(models[n], floor_ms) < target]
        lines += [
            "",
            f"Lightning's floor, {floor_name}: a bare Trainer (no callbacks, no progress bar) "
            "over a module whose step is only its objective's loss, in lockstep as above: ratio "
            f"{floor['ratio']:.3f}, {floor_ms:+.2f} ms per step, what Lightning's loop costs any "
            "module on this machine; the callbacks of `make train` (progress bar and non-finite "
            "guard included) and the framework's step (reseeding, epoch means, logging) add "
            f"{ours:+.2f} ms to it.",
        ]
        if beyond:
            lines += [
                "",
                f"Out of reach inside Lightning's loop at batch {first['batch_size']} (their "
                f"ratio at the floor is below {target}): {', '.join(beyond)}.",
            ]
    if results.get("large_batch"):
        lines += [
            "",
            f"The same at batch {LARGE_BATCH} for the fastest models (the Trainer's cost is "
            "per step):",
            "",
            *model_table(results["large_batch"], target),
        ]
    return "\n".join(lines) + "\n"
