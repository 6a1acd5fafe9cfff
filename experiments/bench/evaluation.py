"""Evaluation cost: the batched importance-weighted log-likelihood against
per-example and per-sample loops, and the default evaluation of one
checkpoint in units of training epochs.

    python experiments/bench/evaluation.py [--tiny] [--json PATH]

1. Likelihood. `importance_log_likelihood` scores the joint (image, label) of
   MNIST test examples with K importance samples, decoding chunks of K for a
   batch of examples at once (`likelihood.batch_size` of `make train`). Two
   loops compute the same estimate: per example, batched over K (as Pythae's
   `get_nll`, which also re-encodes the example for every chunk; here it is
   encoded once) on the same examples, and per (example, sample), one decode
   per z, on the first few of them. Both read the very noise the batched call
   drew (re-drawn from the same seed), so their estimates must match the
   batched ones, checked in float32 and on a float64 copy; they do not pay
   for drawing it. Costs are compared per (example, sample), median and best
   of the repeats, run in rotating order so that drift on a shared machine
   hits all three; the 5x target is judged on the lower of the two ratios.
2. Evaluation. `mwvae.eval.evaluate` with the settings of `make train` (the
   `evaluation` block of conf/train.yaml plus `figures`) on the default
   MW-VAE after one epoch of training, against that epoch: a plain PyTorch
   loop over the datamodule's training loader (objective, zero_grad,
   backward, step). The digit classifier that coherence needs is loaded (or
   trained and cached) first, outside the timing. The functions `evaluate`
   calls are wrapped with timers for a breakdown; figures go to a temporary
   folder.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import json
import math
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

import mwvae.eval
from mwvae.config import compose_config
from mwvae.evaluation.classifier import load_classifier
from mwvae.evaluation.likelihood import importance_log_likelihood
from mwvae.gaussians import DiagGaussian
from mwvae.train import build_model

ROOT = Path(__file__).resolve().parents[2]
TARGET = 5.0  # batched estimator vs the per-sample loop, per (example, sample)
SCORED = ("image", "label")
K_CHUNK = 100  # the estimator's default chunk of samples
CHECK_K = 250  # samples of the float64 agreement check: two full chunks and a partial one
IMPLEMENTATIONS = ("batched", "per_example_loop", "per_sample_loop")
FULL = {"examples": 20, "loop_examples": 2, "k": 1000, "repeats": 5, "overrides": []}
TINY = {
    "examples": 4,
    "loop_examples": 2,
    "k": 150,  # two chunks: the second a partial one
    "repeats": 1,
    "overrides": ["data.subset={train:200,val:200,test:200}"],
    "evaluation": {"likelihood": {"k": 10, "num_samples": 20}, "joint_samples": 200},
}
# Functions `evaluate` looks up in mwvae.eval, with the one that calls them.
PARTS = {
    "load_classifier": None,
    "whole": None,
    "reconstruction_errors": None,
    "coherences": None,
    "image_to_label_coherence": "coherences",
    "label_to_image_coherence": "coherences",
    "joint_coherence": "coherences",
    "style_errors": None,
    "log_likelihoods": None,
    "importance_log_likelihood": "log_likelihoods",
    "representation": None,
    "linear_probe_accuracy": "representation",
    "retrieval": None,
    "draw_evaluation_figures": None,
}


# ---------------------------------------------------------------- likelihood
def proposal_noise(seed: int, k: int, shape: torch.Size) -> torch.Tensor:
    """The N(0, I) noise, (K, examples, dim), that `importance_log_likelihood`
    draws after `torch.manual_seed(seed)`: chunks of K_CHUNK samples in order."""
    torch.manual_seed(seed)
    return torch.cat([torch.randn(min(K_CHUNK, k - s), *shape) for s in range(0, k, K_CHUNK)])


def log_prior_minus_proposal(q: DiagGaussian, z: torch.Tensor) -> torch.Tensor:
    return DiagGaussian.standard(z).log_prob(z) - q.log_prob(z)


@torch.no_grad()
def per_example_loop(model, batch, scored, noise: torch.Tensor) -> torch.Tensor:
    """One example at a time, its K samples decoded in chunks of K_CHUNK."""
    k, estimates = len(noise), []
    for i in range(noise.shape[1]):
        x = {m: batch[m][i : i + 1] for m in scored}
        q = model.latent_proposal(x)
        log_w = []
        for s in range(0, k, K_CHUNK):
            z = q.mu + q.std * noise[s : s + K_CHUNK, i]
            w = log_prior_minus_proposal(q, z)
            logits = model.decode_latent(z, scored)
            for m in scored:
                target = x[m].expand(len(z), *x[m].shape[1:])
                w = w - model.likelihoods[m].nll(logits[m], target)
            log_w.append(w)
        estimates.append(torch.logsumexp(torch.cat(log_w), 0) - math.log(k))
    return torch.stack(estimates)


@torch.no_grad()
def per_sample_loop(model, batch, scored, noise: torch.Tensor) -> torch.Tensor:
    """The obvious implementation: per example, per sample z_k, decode that z
    and keep its log weight; then logsumexp."""
    k, estimates = len(noise), []
    for i in range(noise.shape[1]):
        x = {m: batch[m][i : i + 1] for m in scored}
        q = model.latent_proposal(x)
        log_w = []
        for j in range(k):
            z = q.mu + q.std * noise[j, i : i + 1]
            w = log_prior_minus_proposal(q, z)
            logits = model.decode_latent(z, scored)
            for m in scored:
                w = w - model.likelihoods[m].nll(logits[m], x[m])
            log_w.append(w)
        estimates.append(torch.logsumexp(torch.cat(log_w), 0) - math.log(k))
    return torch.stack(estimates)


def float64_agreement(model, batch, k: int) -> dict[str, float]:
    """The three implementations on a float64 copy of the model, same draws:
    the largest difference of each loop's estimates from the batched ones.
    In float32 they differ by rounding alone, about one ulp of |log p|."""
    model = copy.deepcopy(model).double()
    batch = {m: t.double() if t.is_floating_point() else t for m, t in batch.items()}
    scored = list(SCORED)
    loops = {"per_example_loop": per_example_loop, "per_sample_loop": per_sample_loop}
    previous = torch.get_default_dtype()
    # float64 noise too (the estimator draws the default dtype), so that z is
    # float64 even if an encoder hands back a float32 proposal.
    torch.set_default_dtype(torch.float64)
    try:
        noise = proposal_noise(1, k, model.latent_proposal(batch).mu.shape)
        torch.manual_seed(1)
        reference = importance_log_likelihood(model, batch, scored, k=k, k_chunk=K_CHUNK)
        return {
            name: (loop(model, batch, scored, noise) - reference).abs().max().item()
            for name, loop in loops.items()
        }
    finally:
        torch.set_default_dtype(previous)


def likelihood_bench(model, test, examples: int, loop_examples: int, k: int, repeats: int):
    """Seconds per call of each implementation; cost per (example, sample),
    median and best of the repeats; the batched estimator's speed-ups; and the
    largest difference of the loops' estimates from the batched ones. The
    per-example loop runs on every batched example, the per-sample loop on
    the first `loop_examples`."""
    seed, scored = 0, list(SCORED)
    batch = {m: test[m][:examples] for m in scored}
    few = {m: t[:loop_examples] for m, t in batch.items()}
    noise = proposal_noise(seed, k, model.latent_proposal(batch).mu.shape)

    def batched():
        torch.manual_seed(seed)  # the draws `noise` holds
        return importance_log_likelihood(model, batch, scored, k=k, k_chunk=K_CHUNK)

    runs = {
        "batched": batched,
        "per_example_loop": lambda: per_example_loop(model, batch, scored, noise),
        "per_sample_loop": lambda: per_sample_loop(model, few, scored, noise[:, :loop_examples]),
    }
    counts = {"batched": examples, "per_example_loop": examples, "per_sample_loop": loop_examples}
    batched()  # warm-up: allocator, kernels
    seconds = {name: [] for name in IMPLEMENTATIONS}
    estimates = {}
    for repeat in range(repeats):  # rotating order: drift hits every implementation
        order = IMPLEMENTATIONS[repeat % 3 :] + IMPLEMENTATIONS[: repeat % 3]
        for name in order:
            start = time.perf_counter()
            estimates[name] = runs[name]()
            seconds[name].append(time.perf_counter() - start)
    us = {
        stat: {n: 1e6 * fn(s) / (counts[n] * k) for n, s in seconds.items()}
        for stat, fn in (("median", statistics.median), ("best", min))
    }
    speedup = {
        loop: {stat: us[stat][loop] / us[stat]["batched"] for stat in us}
        for loop in IMPLEMENTATIONS[1:]
    }
    check_k = min(k, CHECK_K)
    slowest = min(speedup["per_sample_loop"].values())
    return {
        "scored": scored,
        "k": k,
        "k_chunk": K_CHUNK,
        "examples": counts,
        "repeats": repeats,
        "seconds": seconds,
        "us_per_example_sample": us,
        "speedup_vs_per_sample_loop": speedup["per_sample_loop"],
        "speedup_vs_per_example_loop": speedup["per_example_loop"],
        "max_abs_diff": {
            n: (estimates[n] - estimates["batched"][: counts[n]]).abs().max().item()
            for n in IMPLEMENTATIONS[1:]
        },
        "check_k": check_k,
        "max_abs_diff_float64": float64_agreement(model, few, check_k),
        "mean_estimate": estimates["batched"].mean().item(),
        "target": TARGET,
        "target_met": slowest >= TARGET,  # on the lower of the two ratios
    }


# ---------------------------------------------------------------- evaluation
class PartTimer:
    """Seconds and calls per function of mwvae.eval, while `patched()` is active."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, name: str, fn):
        @functools.wraps(fn)
        def clocked(*args, **kwargs):
            key = name
            if name == "importance_log_likelihood":  # one row per scored subset
                key = f"{name}({', '.join(args[2])})"
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - start
                self.calls[key] = self.calls.get(key, 0) + 1

        return clocked

    @contextlib.contextmanager
    def patched(self):
        with contextlib.ExitStack() as stack:
            for name in PARTS:
                fn = getattr(mwvae.eval, name)
                stack.enter_context(mock.patch.object(mwvae.eval, name, self.wrap(name, fn)))
            yield

    def breakdown(self, total: float) -> list[dict]:
        rows = []
        for key, seconds in self.seconds.items():
            parent = PARTS[key.split("(")[0]]
            rows.append({"part": key, "within": parent, "seconds": seconds})
            rows[-1] |= {"calls": self.calls[key], "share": seconds / total}
        top = sum(r["seconds"] for r in rows if r["within"] is None)
        rest = {"part": "other (setup, glue)", "within": None, "seconds": total - top}
        rows.append(rest | {"calls": 1, "share": (total - top) / total})
        return rows


def plain_epoch(model, loader, max_batches: int | None = None) -> int:
    """One epoch (or its first batches) of the model's objective with its optimizer."""
    optimizer = model.configure_optimizers()
    model.train()
    steps = 0
    for batch in loader:
        loss = model.objective(batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps += 1
        if steps == max_batches:
            break
    return steps


def warm_classifier(cfg, datamodule) -> dict:
    """Load the cached digit classifier, training it if it is missing (on the
    full training split even when the run uses a subset of it)."""
    path = Path(datamodule.data_dir) / "digit_classifier.safetensors"
    existed = path.exists()
    if not existed:
        datamodule = instantiate(cfg.data, subset={}, _recursive_=False)
    start = time.perf_counter()
    load_classifier(datamodule)
    seconds = time.perf_counter() - start
    return {"path": str(path), "cache": "warm" if existed else "built", "seconds": seconds}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if sys.platform == "linux" else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def timed(fn):
    """fn's value, wall seconds and this process's CPU seconds (all threads):
    the CPU time is less sensitive to other jobs on a shared machine."""
    start, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - start, time.process_time() - cpu


# ---------------------------------------------------------------- entry points
def run(tiny: bool = False) -> dict:
    """Both measurements; `tiny` runs on small subsets in a few seconds (a test)."""
    plan = TINY if tiny else FULL
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-evaluation-") as tmp:
        cfg = compose_config(
            ["logger=none", f"paths.root_dir={ROOT}", f"paths.output_dir={tmp}", *plan["overrides"]]
        )
        datamodule = instantiate(cfg.data, _recursive_=False)
        _, setup_seconds, _ = timed(datamodule.setup)
        with contextlib.redirect_stdout(sys.stderr):  # progress bars stay off the report
            classifier = warm_classifier(cfg, datamodule)
        loader = datamodule.train_dataloader()

        torch.manual_seed(cfg.seed)
        model = build_model(cfg)
        plain_epoch(copy.deepcopy(model), loader, max_batches=5)  # warm-up
        batches, epoch_seconds, epoch_cpu = timed(lambda: plain_epoch(model, loader))
        model.eval()

        test = datamodule.splits["test"]
        likelihood = likelihood_bench(
            model, test, plan["examples"], plan["loop_examples"], plan["k"], plan["repeats"]
        )

        settings = {**OmegaConf.to_container(cfg.evaluation, resolve=True), "figures": cfg.figures}
        for key, value in plan.get("evaluation", {}).items():
            settings[key] = {**settings[key], **value} if isinstance(value, dict) else value
        parts = PartTimer()
        with parts.patched(), contextlib.redirect_stdout(sys.stderr):
            metrics, evaluate_seconds, evaluate_cpu = timed(
                lambda: mwvae.eval.evaluate(model, datamodule, settings, Path(tmp) / "eval")
            )
        figures = sorted(p.name for p in (Path(tmp) / "eval" / "figures").glob("*.png"))

    sizes = {split: len(t["label"]) for split, t in datamodule.splits.items()}
    return {
        "tiny": tiny,
        "machine": f"{cpu_name()}, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
        "model": cfg.model._target_,
        "latent_dim": cfg.latent.dim,
        "data": {"overrides": plan["overrides"], "examples": sizes},
        "likelihood": likelihood,
        "evaluation": {
            "settings": settings,
            "classifier": classifier,
            "data_setup_seconds": setup_seconds,
            "epoch_seconds": epoch_seconds,
            "epoch_batches": batches,
            "batch_size": cfg.data.batch_size,
            "evaluate_seconds": evaluate_seconds,
            "evaluation_in_epochs": evaluate_seconds / epoch_seconds,
            "cpu_seconds": {"epoch": epoch_cpu, "evaluate": evaluate_cpu},
            "evaluation_in_epochs_cpu": evaluate_cpu / epoch_cpu,
            "breakdown": parts.breakdown(evaluate_seconds),
            "figures": figures,
            "metrics": metrics,
        },
        "wall_seconds": time.perf_counter() - wall,
    }


def verdict(lk: dict) -> str:
    """Met or missed against TARGET, on the lower of the median and best ratios."""
    ratios = lk["speedup_vs_per_sample_loop"]
    low = min(ratios.values())
    both = f"{ratios['median']:.1f}x on medians, {ratios['best']:.1f}x on best calls"
    if lk["target_met"]:
        return (
            f"**Target met**: the batched estimator is {both} faster per (example, sample) than "
            f"the per-sample loop (target >= {TARGET:g}x, judged on the lower ratio)."
        )
    us = lk["us_per_example_sample"]["best"]
    return (
        f"**Target missed** by {TARGET / low:.2f}x: the batched estimator is {both} faster per "
        f"(example, sample) than the per-sample loop (target >= {TARGET:g}x, judged on the lower "
        f"ratio). A single-z decode costs only {us['per_sample_loop']:.0f} us against "
        f"{us['batched']:.0f} us per sample batched: on this machine the per-call overhead that "
        "batching removes is small next to the arithmetic both do."
    )


def to_markdown(results: dict) -> str:
    lk, ev = results["likelihood"], results["evaluation"]
    k, n = lk["k"], lk["examples"]
    us, seconds = lk["us_per_example_sample"], lk["seconds"]
    labels = {
        "batched": "batched: `importance_log_likelihood`",
        "per_example_loop": "per-example loop, batched over K (as Pythae's `get_nll`)",
        "per_sample_loop": "per-sample loop: one decode per z",
    }
    lines = [
        "## Evaluation",
        "",
        f"{results['model']} (latent {results['latent_dim']}), {results['machine']}, "
        f"torch {results['torch']}{'; **tiny run**' if results['tiny'] else ''}; "
        f"wall time {results['wall_seconds']:.0f} s.",
        "",
        "### Importance-weighted log-likelihood",
        "",
        f"log p(image, label) of MNIST test examples, K = {k} importance samples each (chunks "
        f"of {lk['k_chunk']}); the batched estimator takes {n['batched']} examples at once "
        "(`likelihood.batch_size` of `make train`). Compared: the cost per (example, sample), "
        f"seconds of a call / (examples x K), median and best of {lk['repeats']} calls each, "
        "in rotating order. The loops read the batched call's noise draws, so their estimates "
        "must equal its ones: max |difference| in the timed float32 runs (rounding; |log p| is "
        f"about {abs(lk['mean_estimate']):.0f} nats) and on a float64 copy of the model "
        f"(K = {lk['check_k']}, first {n['per_sample_loop']} examples).",
        "",
        "| implementation | examples x K | s / call (median) | us / (example, sample): "
        "median | best | batched is x faster: median | best | max abs diff: float32 | float64 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in IMPLEMENTATIONS:
        diffs = [lk[key].get(name) for key in ("max_abs_diff", "max_abs_diff_float64")]
        cells = [
            labels[name],
            f"{n[name]} x {k}",
            f"{statistics.median(seconds[name]):.3f}",
            *(f"{us[stat][name]:.1f}" for stat in ("median", "best")),
            *(f"{us[stat][name] / us[stat]['batched']:.1f}" for stat in ("median", "best")),
            *("-" if d is None else f"{d:.1e}" for d in diffs),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", verdict(lk), ""]

    settings, cls = ev["settings"], ev["classifier"]
    lk_settings = settings["likelihood"]
    sizes = results["data"]["examples"]
    lines += [
        "### Default evaluation of one checkpoint",
        "",
        f"`mwvae.eval.evaluate` with the settings of `make train` (K = {lk_settings['k']} on "
        f"{lk_settings['num_samples']} test examples in batches of {lk_settings['batch_size']}, "
        f"{settings['joint_samples']} joint-coherence samples, figures: {settings['figures']}) "
        f"on {sizes['test']} test examples, after one training epoch of the same model "
        f"({sizes['train']} examples, {ev['epoch_batches']} batches of {ev['batch_size']}, plain "
        "PyTorch loop). Digit classifier cache: "
        f"{cls['cache']} ({'loaded' if cls['cache'] == 'warm' else 'trained'} in "
        f"{cls['seconds']:.1f} s, before and outside the timing). Each is timed once, one "
        "after the other; on a shared machine the CPU-time ratio is the steadier one.",
        "",
        "| quantity | wall time | CPU time (all threads) |",
        "|---|---|---|",
        f"| one training epoch | {ev['epoch_seconds']:.1f} s "
        f"| {ev['cpu_seconds']['epoch']:.1f} s |",
        f"| default evaluation | {ev['evaluate_seconds']:.1f} s "
        f"| {ev['cpu_seconds']['evaluate']:.1f} s |",
        f"| **evaluation / epoch** | **{ev['evaluation_in_epochs']:.2f} epochs** "
        f"| {ev['evaluation_in_epochs_cpu']:.2f} epochs |",
        "",
        "Where the evaluation's time goes (functions of `mwvae.eval`; indented rows are "
        "part of the row above them):",
        "",
        "| part | s | share | calls |",
        "|---|---|---|---|",
    ]
    rows = ev["breakdown"]
    ordered = sorted((r for r in rows if r["within"] is None), key=lambda r: -r["seconds"])
    for row in ordered:
        children = [r for r in rows if r["within"] == row["part"]]
        for r in [row, *sorted(children, key=lambda r: -r["seconds"])]:
            name = r["part"] if r["part"].startswith("other") else f"`{r['part']}`"
            indent = "&nbsp;&nbsp;&nbsp;&nbsp;" if r in children else ""
            lines.append(
                f"| {indent}{name} | {r['seconds']:.2f} | {100 * r['share']:.1f}% | {r['calls']} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--tiny", action="store_true", help="a few seconds on small subsets")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = run(tiny=args.tiny)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(to_markdown(results))


if __name__ == "__main__":
    main()
