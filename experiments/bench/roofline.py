"""Roofline: the FLOP rate a training step achieves against the rate this
machine's matrix multiplications reach at the same shapes.

    python experiments/bench/roofline.py [--models mw_vae] [--tiny] [--json PATH]

For each model's MNIST training step (forward, backward, optimizer step) the
benchmark counts the FLOPs with `torch.utils.flop_counter.FlopCounterMode`,
records every matrix multiplication the step dispatches (op, shapes and
strides, so transposed operands stay transposed), replays exactly those
multiplications on random tensors, and times both. The fraction achieved
FLOP rate / replayed-GEMM FLOP rate says how close the step is to doing
nothing but its matrix products; the rate of one large square product is
given as the machine's peak for scale.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from mwvae.config import compose_config
from mwvae.train import build_model

GEMMS = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.bmm.default}
TINY = {"models": ["mw_vae"], "steps": 3, "replays": 3, "peak_size": 256}
FULL = {"models": ["mw_vae", "vae", "mvae_poe", "mopoe"], "steps": 40, "replays": 30}


class GemmRecorder(TorchDispatchMode):
    """Records each matrix multiplication: op, (shape, stride) of its tensor
    arguments and its other arguments."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in GEMMS:
            layout = [(tuple(a.shape), a.stride()) if torch.is_tensor(a) else a for a in args]
            self.calls.append((func, layout, dict(kwargs)))
        return func(*args, **kwargs)


def gemm_flops(func, layout) -> int:
    """2 m n k per product (per batch entry for bmm); addmm's addition not counted."""
    if func is torch.ops.aten.bmm.default:
        (b, m, k), (_, _, n) = layout[0][0], layout[1][0]
        return 2 * b * m * n * k
    first, second = layout[-2][0], layout[-1][0]
    return 2 * first[0] * first[1] * second[1]


def materialise(layout) -> list:
    """Random tensors with the recorded shapes and strides (transposes kept)."""
    args = []
    for entry in layout:
        if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], tuple):
            shape, stride = entry
            args.append(torch.empty_strided(shape, stride).normal_())
        else:
            args.append(entry)
    return args


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_matmul_rate(size: int, repeats: int) -> float:
    """FLOP/s of one size x size float32 product: the machine's scale."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2 * size**3 / median_seconds(lambda: a @ b, repeats)


def measure(model_name: str, steps: int, replays: int) -> dict:
    cfg = compose_config(["logger=none", f"model={model_name}", "data.subset.train=2560"])
    datamodule = instantiate(cfg.data, _recursive_=False)
    datamodule.setup("fit")
    batches = list(datamodule.train_dataloader())
    torch.manual_seed(0)
    model = build_model(cfg).train()
    optimizer = model.configure_optimizers()

    def step(batch) -> None:
        loss = model.objective(batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step(batches[0])  # Adam's state exists from here on, as in training
    with FlopCounterMode(display=False) as counter, GemmRecorder() as recorder:
        step(batches[0])
    flops = counter.get_total_flops()
    recorded = [(func, materialise(layout), kwargs) for func, layout, kwargs in recorder.calls]

    def replay() -> None:
        for func, args, kwargs in recorded:
            func(*args, **kwargs)

    step_times = []
    for i in range(steps):
        start = time.perf_counter()
        step(batches[i % len(batches)])
        step_times.append(time.perf_counter() - start)
    step_seconds = statistics.median(step_times)
    gemm_seconds = median_seconds(replay, replays)
    gemm_total = sum(gemm_flops(func, layout) for func, layout, _ in recorder.calls)
    return {
        "batch_size": cfg.data.batch_size,
        "flops_per_step": flops,
        "gemm_flops_per_step": gemm_total,
        "gemm_calls_per_step": len(recorded),
        "step_ms": 1e3 * step_seconds,
        "gemm_replay_ms": 1e3 * gemm_seconds,
        "achieved_gflops": flops / step_seconds / 1e9,
        "gemm_gflops_at_these_shapes": gemm_total / gemm_seconds / 1e9,
        "fraction": (flops / step_seconds) / (gemm_total / gemm_seconds),
    }


def run(tiny: bool = False, models: list[str] | None = None) -> dict:
    settings = TINY if tiny else FULL
    results = {
        name: measure(name, settings["steps"], settings["replays"])
        for name in models or settings["models"]
    }
    size = settings.get("peak_size", 2048)
    return {
        "models": results,
        "peak_size": size,
        "peak_gflops": peak_matmul_rate(size, settings["replays"] // 3 + 2) / 1e9,
        "threads": torch.get_num_threads(),
    }


def to_markdown(results: dict) -> str:
    peak = results["peak_gflops"]
    lines = [
        "## Roofline: the training step against the machine's matrix products",
        "",
        "FLOPs of one MNIST training step counted by `FlopCounterMode` (matrix products; "
        "elementwise work and the optimizer are free in this count), the step timed, and the "
        "same matrix products replayed alone at the same shapes and strides "
        f"(`experiments/bench/roofline.py`). For scale, one {results['peak_size']}^2 float32 "
        f"product runs at {peak:.1f} GFLOP/s on {results['threads']} threads.",
        "",
        "| model | GFLOP/step | products/step | step ms | products alone ms | "
        "achieved GFLOP/s | products' GFLOP/s | fraction | of peak |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results["models"].items():
        lines.append(
            f"| {name} | {r['flops_per_step'] / 1e9:.3f} | {r['gemm_calls_per_step']} | "
            f"{r['step_ms']:.2f} | {r['gemm_replay_ms']:.2f} | {r['achieved_gflops']:.1f} | "
            f"{r['gemm_gflops_at_these_shapes']:.1f} | {r['fraction']:.2f} | "
            f"{r['achieved_gflops'] / peak:.2f} |"
        )
    lines += [
        "",
        "The fraction is the share of the step spent in its matrix products; the rest is "
        "elementwise work (activations, likelihoods, KL and W2 terms, Adam), which moves "
        "memory rather than doing arithmetic.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None, help="comma-separated")
    parser.add_argument("--tiny", action="store_true", help="a quick check, not a measurement")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = run(args.tiny, args.models.split(",") if args.models else None)
    print(to_markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
