"""Evaluation cost: the batched importance-weighted log-likelihoods against
per-example and per-sample loops, and the default evaluation of one
checkpoint in units of training epochs.

    python experiments/bench/evaluation.py [--tiny] [--json PATH]

1. Likelihood. `estimate_log_likelihoods` scores every subset of (image,
   label) of MNIST test examples (log p(image), log p(label), log p(image,
   label)) from the same K draws of one defensive-mixture proposal per
   example (the model's `proposal_components` and the prior), decoding
   chunks of K for a batch of examples at once, as the evaluation runs it
   (`likelihood.batch_size` of `make train`). Two loops compute the same
   estimates: per example, batched over K (as Pythae's `get_nll`, which also
   re-encodes the example for every chunk; here it is encoded once), on the
   same examples, and per (example, sample), one decode per z, on the first
   few of them. Each rebuilds the mixture from `proposal_components` of its
   own example and reads the very noise the batched call drew (re-drawn from
   an equally seeded generator in the same chunks), so their estimates must
   match the batched ones, checked in float32 and on a float64 copy; they do
   not pay for drawing it. Costs are compared per (example, sample), one
   sample scoring every subset, median and best of the repeats, run in
   rotating order so that drift on a shared machine hits all three; the 5x
   target is judged on the lower of the two ratios.
2. Evaluation. `mwvae.evaluation.suite.evaluate` with the settings of `make
   train` (`evaluation` of the composed config, defaults in
   `mwvae.evaluation.settings`, plus `figures`) on the default MW-VAE after
   one epoch of training, against that epoch: a plain PyTorch loop over the
   datamodule's training loader (objective, zero_grad, backward, step). The
   classifiers that coherence needs are loaded (or trained and cached) first,
   outside the timing. The functions `evaluate` calls are wrapped with timers
   for a breakdown; figures go to a temporary folder.
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

import mwvae.evaluation.likelihood
import mwvae.evaluation.suite
from mwvae.config import compose_config
from mwvae.evaluation.classifier import load_classifiers
from mwvae.evaluation.likelihood import (
    PRIOR_WEIGHT,
    SCALES,
    estimate_log_likelihoods,
    stratified_counts,
    subset_name,
)
from mwvae.gaussians import DiagGaussian
from mwvae.train import build_model

ROOT = Path(__file__).resolve().parents[2]
TARGET = 5.0  # batched estimator vs the per-sample loop, per (example, sample)
SCORED = ("image", "label")
SUBSETS = (("image",), ("label",), ("image", "label"))  # every subset of SCORED
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
# The functions `evaluate` calls, by the module it looks them up in, with the
# function that calls them (None: `evaluate` itself).
SUITE, LIKELIHOOD = mwvae.evaluation.suite, mwvae.evaluation.likelihood
PARTS = {
    "load_classifiers": (SUITE, None),
    "whole": (SUITE, None),
    "reconstruction_errors": (SUITE, None),
    "coherences": (SUITE, None),
    "cross_coherences": (SUITE, "coherences"),
    "joint_coherence": (SUITE, "coherences"),
    "style_errors": (SUITE, None),
    "likelihood_metrics": (SUITE, None),
    "estimate_log_likelihoods": (LIKELIHOOD, "likelihood_metrics"),
    "probes": (SUITE, None),
    "encode_means": (SUITE, "probes"),
    "linear_probe_accuracy": (SUITE, "probes"),
    "alignment": (SUITE, None),
    "retrieval": (SUITE, None),
    "draw_evaluation_figures": (SUITE, None),
}


# ---------------------------------------------------------------- likelihood
def proposal_noise(seed: int, k: int, examples: int, dim: int, dtype=torch.float32):
    """The N(0, I) noise, (K, examples, dim), that `estimate_log_likelihoods`
    draws from a generator seeded with `seed`: chunks of K_CHUNK samples in order."""
    generator = torch.Generator().manual_seed(seed)
    return torch.cat(
        [
            torch.randn(min(K_CHUNK, k - s), examples, dim, generator=generator, dtype=dtype)
            for s in range(0, k, K_CHUNK)
        ]
    )


def batched_estimates(model, batch, k: int, seed: int) -> dict[tuple[str, ...], torch.Tensor]:
    """`estimate_log_likelihoods` as the evaluation calls it (every subset,
    one seeded generator), its log p(x_S) per subset."""
    generator = torch.Generator(model.device).manual_seed(seed)
    found = estimate_log_likelihoods(
        model, batch, SUBSETS, k=k, k_chunk=K_CHUNK, generator=generator
    )
    return {s: found[s].log_p for s in SUBSETS}


class Mixture:
    """One example's defensive mixture proposal: the Gaussians the model
    offers for it at each of SCALES (as is, wider), then the prior N(0, I); of K
    samples, `stratified_counts` come from each in turn, sample j from
    `components[owner[j]]`."""

    def __init__(self, model, x: dict[str, torch.Tensor], k: int):
        offered = model.proposal_components(x)  # each (1, D)
        scaled = [DiagGaussian.from_mean_std(q.mu, q.std * s) for s in SCALES for q in offered]
        self.components = [*scaled, DiagGaussian.standard(offered[0].mu)]
        counts = stratified_counts(k, len(scaled), PRIOR_WEIGHT)
        self.log_alpha = [math.log(n / k) for n in counts]
        self.owner = [c for c, n in enumerate(counts) for _ in range(n)]

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log sum_c alpha_c q_c(z) for z of shape (n, D)."""
        terms = [a + q.log_prob(z) for a, q in zip(self.log_alpha, self.components, strict=True)]
        return torch.logsumexp(torch.stack(terms), 0)


def log_weights(model, x, z: torch.Tensor, mixture: Mixture) -> dict[tuple[str, ...], torch.Tensor]:
    """log p(z) - log q(z) + sum_{m in S} log p(x_m | z), per subset S, for
    the rows of z (n, D) of the one example x."""
    base = DiagGaussian.standard(z).log_prob(z) - mixture.log_prob(z)
    outputs = model.decode(z, list(SCORED))
    log_lik = {
        m: -model.likelihoods[m].nll(outputs[m], x[m].expand(len(z), *x[m].shape[1:]))
        for m in SCORED
    }
    return {s: base + sum(log_lik[m] for m in s) for s in SUBSETS}


def estimates_of(parts: dict[tuple[str, ...], list[torch.Tensor]], k: int) -> dict:
    return {s: torch.logsumexp(torch.cat(w), 0) - math.log(k) for s, w in parts.items()}


@torch.no_grad()
def per_example_loop(model, batch, noise: torch.Tensor) -> dict[tuple[str, ...], torch.Tensor]:
    """One example at a time, its K samples decoded in chunks of K_CHUNK."""
    k, found = len(noise), {s: [] for s in SUBSETS}
    for i in range(noise.shape[1]):
        x = {m: batch[m][i : i + 1] for m in SCORED}
        mixture = Mixture(model, x, k)
        mu = torch.cat([mixture.components[c].mu for c in mixture.owner])  # (K, D)
        std = torch.cat([mixture.components[c].std for c in mixture.owner])
        parts = {s: [] for s in SUBSETS}
        for start in range(0, k, K_CHUNK):
            rows = slice(start, start + K_CHUNK)
            z = mu[rows] + std[rows] * noise[rows, i]
            for s, w in log_weights(model, x, z, mixture).items():
                parts[s].append(w)
        for s, estimate in estimates_of(parts, k).items():
            found[s].append(estimate)
    return {s: torch.stack(e) for s, e in found.items()}


@torch.no_grad()
def per_sample_loop(model, batch, noise: torch.Tensor) -> dict[tuple[str, ...], torch.Tensor]:
    """The obvious implementation: per example, per sample z_k from its
    mixture component, decode that z and keep its log weights; then logsumexp."""
    k, found = len(noise), {s: [] for s in SUBSETS}
    for i in range(noise.shape[1]):
        x = {m: batch[m][i : i + 1] for m in SCORED}
        mixture = Mixture(model, x, k)
        parts = {s: [] for s in SUBSETS}
        for j in range(k):
            q = mixture.components[mixture.owner[j]]
            z = q.mu + q.std * noise[j, i : i + 1]
            for s, w in log_weights(model, x, z, mixture).items():
                parts[s].append(w)
        for s, estimate in estimates_of(parts, k).items():
            found[s].append(estimate)
    return {s: torch.stack(e) for s, e in found.items()}


LOOPS = {"per_example_loop": per_example_loop, "per_sample_loop": per_sample_loop}


def max_abs_diff(found: dict, reference: dict) -> float:
    """The largest |difference| over every subset and example of `found`."""
    return max((found[s] - reference[s][: len(found[s])]).abs().max().item() for s in SUBSETS)


def float64_agreement(model, batch, k: int) -> dict[str, float]:
    """The three implementations on a float64 copy of the model, same draws:
    the largest difference of each loop's estimates from the batched ones.
    In float32 they differ by rounding alone, about one ulp of |log p|."""
    model = copy.deepcopy(model).double()
    batch = {m: t.double() if t.is_floating_point() else t for m, t in batch.items()}
    reference = batched_estimates(model, batch, k, seed=1)
    dtypes = {str(t.dtype) for t in reference.values()}
    if dtypes != {"torch.float64"}:
        raise TypeError(f"the float64 model's estimates came out {sorted(dtypes)}")
    noise = proposal_noise(1, k, len(batch[SCORED[0]]), model.prior_dim, torch.float64)
    return {
        name: max_abs_diff(loop(model, batch, noise), reference) for name, loop in LOOPS.items()
    }


def likelihood_bench(model, test, examples: int, loop_examples: int, k: int, repeats: int):
    """Seconds per call of each implementation; cost per (example, sample),
    median and best of the repeats; the batched estimator's speed-ups; and the
    largest difference of the loops' estimates from the batched ones. The
    per-example loop runs on every batched example, the per-sample loop on
    the first `loop_examples`."""
    seed = 0
    batch = {m: test[m][:examples].to(model.device) for m in SCORED}
    few = {m: t[:loop_examples] for m, t in batch.items()}
    noise = proposal_noise(seed, k, examples, model.prior_dim).to(model.device)
    runs = {
        "batched": lambda: batched_estimates(model, batch, k, seed),
        "per_example_loop": lambda: per_example_loop(model, batch, noise),
        "per_sample_loop": lambda: per_sample_loop(model, few, noise[:, :loop_examples]),
    }
    counts = {"batched": examples, "per_example_loop": examples, "per_sample_loop": loop_examples}
    runs["batched"]()  # warm-up: allocator, kernels
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
    names = {s: subset_name(s, SCORED) for s in SUBSETS}
    return {
        "scored": list(SCORED),
        "subsets": list(names.values()),
        "k": k,
        "k_chunk": K_CHUNK,
        "prior_weight": PRIOR_WEIGHT,
        "components": len(SCALES) * len(model.proposal_components(few)),
        "examples": counts,
        "repeats": repeats,
        "seconds": seconds,
        "us_per_example_sample": us,
        "speedup_vs_per_sample_loop": speedup["per_sample_loop"],
        "speedup_vs_per_example_loop": speedup["per_example_loop"],
        "max_abs_diff": {
            n: max_abs_diff(estimates[n], estimates["batched"]) for n in IMPLEMENTATIONS[1:]
        },
        "check_k": check_k,
        "max_abs_diff_float64": float64_agreement(model, few, check_k),
        "mean_estimates": {names[s]: v.mean().item() for s, v in estimates["batched"].items()},
        "mean_estimate": estimates["batched"][SCORED].mean().item(),
        "target": TARGET,
        "target_met": slowest >= TARGET,  # on the lower of the two ratios
    }


# ---------------------------------------------------------------- evaluation
class PartTimer:
    """Seconds and calls per function of PARTS, while `patched()` is active."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, name: str, fn):
        @functools.wraps(fn)
        def clocked(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
                self.calls[name] = self.calls.get(name, 0) + 1

        return clocked

    @contextlib.contextmanager
    def patched(self):
        with contextlib.ExitStack() as stack:
            for name, (module, _) in PARTS.items():
                fn = getattr(module, name)
                stack.enter_context(mock.patch.object(module, name, self.wrap(name, fn)))
            yield

    def breakdown(self, total: float) -> list[dict]:
        rows = []
        for name, seconds in self.seconds.items():
            rows.append({"part": name, "within": PARTS[name][1], "seconds": seconds})
            rows[-1] |= {"calls": self.calls[name], "share": seconds / total}
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


def warm_classifiers(datamodule, modalities) -> dict:
    """Load the cached classifiers `evaluate` will use (those of the run's
    data: a subset gets classifiers of its own), training any that is missing."""
    cache = Path(datamodule.cache_dir)
    before = set(cache.glob("classifier_*.safetensors"))
    start = time.perf_counter()
    found = load_classifiers(datamodule, list(modalities))
    seconds = time.perf_counter() - start
    built = sorted(p.name for p in set(cache.glob("classifier_*.safetensors")) - before)
    return {
        "cache_dir": str(cache),
        "cache": "built" if built else "warm",
        "built": built,
        "seconds": seconds,
        "test_accuracy": {m: c.test_accuracy for m, c in found.items()},
    }


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


def train_settings(cfg, plan: dict) -> dict:
    """The evaluation settings `make train` passes (its `evaluation` and
    `figures`), with the plan's changes."""
    settings = {**OmegaConf.to_container(cfg.evaluation, resolve=True), "figures": cfg.figures}
    for key, value in plan.get("evaluation", {}).items():
        settings[key] = {**settings[key], **value} if isinstance(value, dict) else value
    return settings


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
            classifier = warm_classifiers(datamodule, cfg.data.modalities)
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

        settings = train_settings(cfg, plan)
        parts = PartTimer()
        with parts.patched(), contextlib.redirect_stdout(sys.stderr):
            metrics, evaluate_seconds, evaluate_cpu = timed(
                lambda: SUITE.evaluate(model, datamodule, settings, Path(tmp) / "eval")
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
        "batched": "batched: `estimate_log_likelihoods`",
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
        "log p(x_S) of MNIST test examples for every subset S of (image, label) "
        f"({', '.join(lk['subsets'])}), all from the same K = {k} importance samples per "
        f"example (chunks of {lk['k_chunk']}) of a defensive mixture of the model's "
        f"{lk['components']} proposal components and the prior (weight {lk['prior_weight']:g}); "
        f"the batched estimator takes {n['batched']} examples at once "
        "(`likelihood.batch_size` of `make train`). Compared: the cost per (example, sample), "
        f"seconds of a call / (examples x K), median and best of {lk['repeats']} calls each, "
        "in rotating order; each sample serves every subset. The loops rebuild each example's "
        "mixture from its own `proposal_components` and read the batched call's noise draws, "
        "so their estimates must equal its ones: max |difference| over subsets and examples "
        "in the timed float32 runs (rounding; |log p(image, label)| is about "
        f"{abs(lk['mean_estimate']):.0f} nats) and on a float64 copy of the model "
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
        f"`mwvae.evaluation.suite.evaluate` with the settings of `make train` (K = {lk_settings['k']} on "
        f"{lk_settings['num_samples']} test examples in batches of {lk_settings['batch_size']}, "
        f"{settings['joint_samples']} joint-coherence samples, figures: {settings['figures']}) "
        f"on {sizes['test']} test examples, after one training epoch of the same model "
        f"({sizes['train']} examples, {ev['epoch_batches']} batches of {ev['batch_size']}, plain "
        "PyTorch loop). Classifier cache: "
        f"{cls['cache']} ({'loaded' if cls['cache'] == 'warm' else 'trained'} in "
        f"{cls['seconds']:.1f} s, before and outside the timing; test accuracy "
        + ", ".join(f"{m} {a:.4f}" for m, a in cls["test_accuracy"].items())
        + "). Each is timed once, one "
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
        "Where the evaluation's time goes (functions of `mwvae.evaluation.suite` and "
        "`estimate_log_likelihoods` of `mwvae.evaluation.likelihood`; indented rows are part "
        "of the row above them):",
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
