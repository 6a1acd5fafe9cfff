"""What the bench sections share: the machine, timing, models composed and
built as `make train` builds them, synthetic MNIST-shaped batches, and
torch's normal draws, seen by a dispatch mode rather than by patching."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch.utils._python_dispatch import TorchDispatchMode

from mwvae.config import compose_config
from mwvae.machine import cpu_name
from mwvae.training import build_model

ROOT = Path(__file__).resolve().parents[2]
# The MNIST subset of tiny runs, and of the test suite's trainings
# (tests/subsets.py): the same training images, so one digit classifier serves all.
TINY_SIZES = {"train": 256, "val": 128, "test": 128}
TINY_SUBSET = "{" + ",".join(f"{split}:{n}" for split, n in TINY_SIZES.items()) + "}"
NORMAL_OPS = {
    torch.ops.aten.randn,
    torch.ops.aten.randn_like,
    torch.ops.aten.normal,
    torch.ops.aten.normal_,
}


def machine() -> str:
    return f"{cpu_name()}, {torch.get_num_threads()} torch threads"


def timed(fn: Callable):
    """fn's value, wall seconds and this process's CPU seconds (all threads:
    less sensitive to other jobs on a shared machine)."""
    start, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - start, time.process_time() - cpu


def interleaved(runs: dict[str, Callable], repeats: int) -> tuple[dict[str, list], dict]:
    """Seconds of each run per repeat, the order rotating every repeat so that
    drift on a shared machine hits them alike; and each run's last value."""
    names, seconds, values = list(runs), {name: [] for name in runs}, {}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            values[name], wall, _ = timed(runs[name])
            seconds[name].append(wall)
    return seconds, values


def compose(model: str | None = None, *overrides: str) -> DictConfig:
    """The config `make train` composes (without a logger)."""
    return compose_config(["logger=none", *([f"model={model}"] if model else []), *overrides])


def build(cfg: DictConfig, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(cfg).train()


def train_step(model, optimizer, batch) -> None:
    loss = model.objective(batch).loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def synthetic_batch(
    names, batch_size: int, seed: int = 0, image_shape: tuple[int, ...] = (1, 28, 28)
) -> dict[str, torch.Tensor]:
    """Labels uniform in 0..9, other modalities uniform [0, 1] images (MNIST's shape by default)."""
    generator = torch.Generator().manual_seed(seed)
    return {
        name: torch.randint(0, 10, (batch_size,), generator=generator)
        if name == "label"
        else torch.rand(batch_size, *image_shape, generator=generator)
        for name in names
    }


class NormalDraws(TorchDispatchMode):
    """Records the tensors of torch's normal draws in the block (`drawn`); given
    `replay`, fills them with its rows in order instead, so that another
    implementation sees the very same noise."""

    def __init__(self, replay: torch.Tensor | None = None):
        super().__init__()
        self.replay, self.used, self.drawn = replay, 0, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket in NORMAL_OPS:
            if self.replay is not None:
                out.copy_(self.replay[self.used : self.used + len(out)].view_as(out))
                self.used += len(out)
            self.drawn.append(out)
        return out


def table(header: str, rows) -> list[str]:
    """A Markdown table from "a | b" strings (or lists of cells): the first
    column text, the others numbers."""
    rows = [row if isinstance(row, str) else " | ".join(map(str, row)) for row in rows]
    return [f"| {header} |", "|---|" + "---:|" * header.count("|"), *(f"| {r} |" for r in rows)]
