"""Roofline: the FLOP rate a training step achieves against the rate this
machine's matrix products reach at the same shapes.

A step's FLOPs are counted by `FlopCounterMode` while a dispatch mode records
every matrix product (shapes and strides: transposes stay transposed); those
products are replayed alone and timed, interleaved with the step. The
fraction of the two rates says how close the step is to doing nothing but its
matrix products; one large square product gives the machine's peak.
"""

from __future__ import annotations

import itertools
import statistics

import torch
from hydra.utils import instantiate
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from experiments.bench.common import build, compose, interleaved, train_step
from mwvae.config.catalog import model_names

GEMMS = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.bmm.default}
TINY = {"models": 1, "steps": 3, "peak_size": 256}
FULL = {"models": None, "steps": 40, "peak_size": 2048}


class GemmRecorder(TorchDispatchMode):
    """Records each matrix product: op, (shape, stride) of its tensor
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
    return [
        torch.empty_strided(*entry).normal_()
        if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], tuple)
        else entry
        for entry in layout
    ]


def median_ms(runs: dict, repeats: int) -> dict[str, float]:
    for fn in runs.values():
        fn()  # warm-up
    seconds, _ = interleaved(runs, repeats)
    return {name: 1e3 * statistics.median(s) for name, s in seconds.items()}


def measure(model_name: str, steps: int) -> dict:
    cfg = compose(model_name, "data.subset.train=2560")
    datamodule = instantiate(cfg.data, _recursive_=False)
    datamodule.setup("fit")
    batches = list(datamodule.train_dataloader())
    model = build(cfg)
    optimizer = model.configure_optimizers()
    train_step(model, optimizer, batches[0])  # Adam's state exists from here on, as in training
    with FlopCounterMode(display=False) as counter, GemmRecorder() as recorder:
        train_step(model, optimizer, batches[0])
    flops = counter.get_total_flops()
    gemm_flops_total = sum(gemm_flops(func, layout) for func, layout, _ in recorder.calls)
    recorded = [(func, materialise(layout), kwargs) for func, layout, kwargs in recorder.calls]
    cycle = itertools.cycle(batches)
    ms = median_ms(
        {
            "step": lambda: train_step(model, optimizer, next(cycle)),
            "gemms": lambda: [func(*args, **kwargs) for func, args, kwargs in recorded],
        },
        steps,
    )
    return {
        "batch_size": cfg.data.batch_size,
        "flops_per_step": flops,
        "gemm_flops_per_step": gemm_flops_total,
        "gemm_calls_per_step": len(recorded),
        "step_ms": ms["step"],
        "gemm_replay_ms": ms["gemms"],
        "achieved_gflops": flops / ms["step"] / 1e6,
        "gemm_gflops_at_these_shapes": gemm_flops_total / ms["gemms"] / 1e6,
        "fraction": (flops / ms["step"]) / (gemm_flops_total / ms["gemms"]),
    }


def run(tiny: bool = False, models: list[str] | None = None) -> dict:
    """Each model (default: the catalog's; tiny: its first), and the peak."""
    plan = TINY if tiny else FULL
    models = models or model_names()[: plan["models"]]
    size = plan["peak_size"]
    a, b = torch.randn(size, size), torch.randn(size, size)
    peak_ms = median_ms({"peak": lambda: a @ b}, plan["steps"] // 4 + 2)["peak"]
    return {
        "models": {name: measure(name, plan["steps"]) for name in models},
        "peak_size": size,
        "peak_gflops": 2 * size**3 / peak_ms / 1e6,
        "threads": torch.get_num_threads(),
    }


def to_markdown(results: dict) -> str:
    peak = results["peak_gflops"]
    lines = [
        "## Roofline: the training step against the machine's matrix products",
        "",
        "FLOPs of one MNIST training step counted by `FlopCounterMode` (matrix products; "
        "elementwise work and the optimizer are free in this count), the step timed, and the "
        "same matrix products replayed alone at the same shapes and strides, interleaved with "
        f"the steps (`experiments/bench/roofline.py`). For scale, one {results['peak_size']}^2 "
        f"float32 product runs at {peak:.1f} GFLOP/s on {results['threads']} threads.",
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
