"""Evaluation cost: the batched importance-weighted log-likelihoods against
per-example and per-sample loops, and the default evaluation of a checkpoint
in training epochs.

1. `estimate_log_likelihoods` scores every subset of (image, label) of MNIST
   test examples from common draws, called on a batch of examples (as the
   evaluation calls it), once per example (batched over K, as Pythae's
   `get_nll`) and once per example with `k_chunk=1` (one decode per z).
   Costs compare per (example, sample), median and best of the repeats in
   rotating order; the 5x target is judged on the lower ratio. Replaying the
   batched call's noise (`NormalDraws`), the loops must reproduce its
   estimates, in float32 and on a float64 copy of the model.
2. `evaluate`, then the evaluation's figures, with the settings of `make
   train` after one epoch of training, against that epoch (a plain loop),
   and `likelihood_metrics` alone with the same settings, for its share. The classifiers that coherence needs are
   loaded (or trained and cached) first, outside the timing.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import statistics
import sys
import tempfile
from dataclasses import asdict
from functools import partial
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from experiments.bench import common
from experiments.bench.common import TINY_SUBSET, NormalDraws, table, timed
from mwvae.evaluation.classifier import load_classifiers
from mwvae.evaluation.likelihood import (
    SCALES,
    estimate_log_likelihoods,
    likelihood_metrics,
    subset_name,
)
from mwvae.evaluation.settings import resolve_settings
from mwvae.evaluation.suite import draw_evaluation_figures, evaluate

TARGET = 5.0  # batched estimator vs the per-sample loop, per (example, sample)
SCORED = ("image", "label")
SUBSETS = (("image",), ("label",), ("image", "label"))  # every subset of SCORED
DEFAULTS = {n: p.default for n, p in inspect.signature(estimate_log_likelihoods).parameters.items()}
CHUNK = DEFAULTS["k_chunk"]
IMPLEMENTATIONS = {  # how each calls the estimator, and its label in the report
    "batched": ({}, "batched: `estimate_log_likelihoods`"),
    "per_example_loop": (
        {"each": True},
        "per-example loop, batched over K (as Pythae's `get_nll`)",
    ),
    "per_sample_loop": ({"each": True, "k_chunk": 1}, "per-sample loop: one decode per z"),
}
FULL = {"examples": 20, "loop_examples": 2, "k": DEFAULTS["k"], "repeats": 5, "overrides": []}
TINY = {
    "examples": 4,
    "loop_examples": 2,
    "k": CHUNK + CHUNK // 2,  # a full chunk and a partial one
    "repeats": 1,
    "overrides": [f"data.subset={TINY_SUBSET}"],
    "evaluation": {"likelihood": {"k": 10, "num_samples": 20}, "joint_samples": 200},
}


def estimates(model, batch, k: int, k_chunk: int = CHUNK, each: bool = False, noise=None):
    """log p(x_S) per example for every subset S, from one call or (`each`) one
    per example; with `noise` (K, examples, D), from those draws."""
    n = len(batch[SCORED[0]])
    found = []
    for rows in [slice(i, i + 1) for i in range(n)] if each else [slice(None)]:
        generator = torch.Generator(model.device).manual_seed(0)
        part = {m: t[rows] for m, t in batch.items()}
        with NormalDraws(noise[:, rows]) if noise is not None else contextlib.nullcontext():
            found.append(
                estimate_log_likelihoods(model, part, SUBSETS, k, k_chunk, generator=generator)
            )
    return {s: torch.cat([f[s].log_p for f in found]) for s in SUBSETS}


def agreement(model, batch, k: int, counts: dict[str, int], noise=None) -> dict[str, float]:
    """The largest |difference| of each loop's estimates from the batched ones,
    on the batched call's draws (or on `noise`, other draws, which must differ)."""
    with NormalDraws() as drawn:
        reference = estimates(model, batch, k)
    noise = torch.cat(drawn.drawn) if noise is None else noise
    diffs = {}
    for name, (how, _) in list(IMPLEMENTATIONS.items())[1:]:
        first = {m: t[: counts[name]] for m, t in batch.items()}
        found = estimates(model, first, k, noise=noise, **how)
        diffs[name] = max(
            (found[s] - reference[s][: counts[name]]).abs().max().item() for s in SUBSETS
        )
    return diffs


def likelihood_bench(model, test, examples: int, loop_examples: int, k: int, repeats: int):
    """Cost per (example, sample) of each implementation (median, best), the
    batched estimator's speed-ups, and the loops' agreement with it."""
    counts = {"batched": examples, "per_example_loop": examples, "per_sample_loop": loop_examples}
    batch = {m: test[m][:examples].to(model.device) for m in SCORED}
    runs = {
        name: partial(estimates, model, {m: t[: counts[name]] for m, t in batch.items()}, k, **how)
        for name, (how, _) in IMPLEMENTATIONS.items()
    }
    runs["batched"]()  # warm-up: allocator, kernels
    seconds, found = common.interleaved(runs, repeats)
    us = {
        stat: {n: 1e6 * fn(s) / (counts[n] * k) for n, s in seconds.items()}
        for stat, fn in (("median", statistics.median), ("best", min))
    }
    speedup = {n: {stat: us[stat][n] / us[stat]["batched"] for stat in us} for n in IMPLEMENTATIONS}
    check_k = min(k, 2 * CHUNK + CHUNK // 2)  # two full chunks and a partial one
    few = {
        m: t[:loop_examples].double() if t.is_floating_point() else t[:loop_examples]
        for m, t in batch.items()
    }
    few_counts = dict.fromkeys(counts, loop_examples)
    names = {s: subset_name(s, SCORED) for s in SUBSETS}
    return {
        "scored": list(SCORED),
        "subsets": list(names.values()),
        "k": k,
        "k_chunk": CHUNK,
        "prior_weight": DEFAULTS["prior_weight"],
        "components": len(SCALES) * len(model.proposal_components(batch)),
        "examples": counts,
        "repeats": repeats,
        "seconds": seconds,
        "us_per_example_sample": us,
        "speedup_vs_per_sample_loop": speedup["per_sample_loop"],
        "speedup_vs_per_example_loop": speedup["per_example_loop"],
        "max_abs_diff": agreement(model, batch, k, counts),
        "check_k": check_k,
        "max_abs_diff_float64": agreement(copy.deepcopy(model).double(), few, check_k, few_counts),
        "mean_estimates": {names[s]: v.mean().item() for s, v in found["batched"].items()},
        "mean_estimate": found["batched"][SCORED].mean().item(),
        "target": TARGET,
        "target_met": min(speedup["per_sample_loop"].values()) >= TARGET,
    }


def plain_epoch(model, loader, max_batches: int | None = None) -> int:
    """One epoch (or its first batches) of the objective with the model's optimizer."""
    optimizer, steps = model.train().configure_optimizers(), 0
    for steps, batch in enumerate(loader, 1):
        common.train_step(model, optimizer, batch)
        if steps == max_batches:
            break
    return steps


def warm_classifiers(datamodule, modalities) -> dict:
    """Load the cached classifiers `evaluate` will use (a data subset gets its
    own), training any that is missing: their cost is not the evaluation's."""
    cache = Path(datamodule.cache_dir)
    before = set(cache.glob("classifier_*.safetensors"))
    found, seconds, _ = timed(lambda: load_classifiers(datamodule, list(modalities)))
    built = sorted(p.name for p in set(cache.glob("classifier_*.safetensors")) - before)
    accuracy = {m: c.test_accuracy for m, c in found.items()}
    return {
        "cache": "built" if built else "warm",
        "built": built,
        "seconds": seconds,
        "test_accuracy": accuracy,
    }


def evaluate_and_draw(model, datamodule, settings: dict, output_dir: Path) -> dict[str, float]:
    """What the end of a run costs: the classifiers (loaded once), the
    metrics, then the figures when the settings ask for them."""
    classifiers = load_classifiers(datamodule, model.modality_names)
    metrics = evaluate(model, datamodule, settings, classifiers)
    if resolve_settings(settings).figures:
        draw_evaluation_figures(model, datamodule, settings, output_dir, classifiers)
    return metrics


def train_settings(cfg, plan: dict) -> dict:
    """The evaluation settings `make train` passes, with the plan's changes."""
    settings = OmegaConf.to_container(cfg.evaluation, resolve=True)
    if "figures" in cfg:  # the run's switch, passed on by `make train`
        settings["figures"] = cfg.figures
    for key, value in plan.get("evaluation", {}).items():
        settings[key] = {**settings[key], **value} if isinstance(value, dict) else value
    return settings


def run(tiny: bool = False) -> dict:
    """Both measurements; `tiny` runs on small subsets in seconds (a test)."""
    plan = TINY if tiny else FULL
    quiet = partial(contextlib.redirect_stdout, sys.stderr)  # progress bars stay off the report
    with tempfile.TemporaryDirectory(prefix="bench-evaluation-") as tmp:
        cfg = common.compose(
            None, f"paths.root_dir={common.ROOT}", f"paths.output_dir={tmp}", *plan["overrides"]
        )
        datamodule = instantiate(cfg.data, _recursive_=False)
        _, setup_seconds, _ = timed(datamodule.setup)
        with quiet():
            classifier = warm_classifiers(datamodule, cfg.data.modalities)
        loader = datamodule.train_dataloader()
        model = common.build(cfg, cfg.seed)
        plain_epoch(copy.deepcopy(model), loader, max_batches=5)  # warm-up
        batches, epoch_seconds, epoch_cpu = timed(lambda: plain_epoch(model, loader))
        test = datamodule.splits["test"]
        likelihood = likelihood_bench(
            model.eval(), test, *(plan[k] for k in ("examples", "loop_examples", "k", "repeats"))
        )
        settings = train_settings(cfg, plan)
        resolved, scored = resolve_settings(settings), {m: test[m] for m in model.modality_names}
        with quiet():
            metrics, evaluate_seconds, evaluate_cpu = timed(
                lambda: evaluate_and_draw(model, datamodule, settings, Path(tmp) / "eval")
            )
            _, likelihood_seconds, _ = timed(
                lambda: likelihood_metrics(
                    model, scored, **asdict(resolved.likelihood), seed=resolved.seed
                )
            )
        figures = sorted(p.name for p in (Path(tmp) / "eval" / "figures").glob("*.png"))
    return {
        "tiny": tiny,
        "machine": common.machine(),
        "torch": torch.__version__,
        "model": cfg.model._target_,
        "latent_dim": cfg.latent.dim,
        "data": {
            "overrides": plan["overrides"],
            "examples": {split: len(t["label"]) for split, t in datamodule.splits.items()},
        },
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
            "likelihood_metrics_seconds": likelihood_seconds,
            "figures": figures,
            "metrics": metrics,
        },
    }


def verdict(lk: dict) -> str:
    """Met or missed against TARGET, on the lower of the median and best ratios."""
    ratios = lk["speedup_vs_per_sample_loop"]
    said = (
        f"the batched estimator is {ratios['median']:.1f}x on medians, {ratios['best']:.1f}x "
        "on best calls faster per (example, sample) than the per-sample loop (target >= "
        f"{TARGET:g}x, judged on the lower ratio)"
    )
    if lk["target_met"]:
        return f"**Target met**: {said}."
    return (
        f"**Target missed** by {TARGET / min(ratios.values()):.2f}x: {said}. On this machine "
        "the per-call overhead that batching removes is small next to the arithmetic both do."
    )


def to_markdown(results: dict) -> str:
    lk, ev = results["likelihood"], results["evaluation"]
    k, n, us = lk["k"], lk["examples"], lk["us_per_example_sample"]
    rows = [
        [
            label,
            f"{n[name]} x {k}",
            f"{statistics.median(lk['seconds'][name]):.3f}",
            *(f"{us[stat][name]:.1f}" for stat in ("median", "best")),
            *(f"{us[stat][name] / us[stat]['batched']:.1f}" for stat in ("median", "best")),
            *(
                f"{lk[key][name]:.1e}" if name in lk[key] else "-"
                for key in ("max_abs_diff", "max_abs_diff_float64")
            ),
        ]
        for name, (_, label) in IMPLEMENTATIONS.items()
    ]
    settings, cls, sizes = ev["settings"], ev["classifier"], results["data"]["examples"]
    lk_set, cpu = settings["likelihood"], ev["cpu_seconds"]
    rest = ev["evaluate_seconds"] - ev["likelihood_metrics_seconds"]
    share = 100 * rest / ev["evaluate_seconds"]
    lines = [
        "## Evaluation",
        "",
        f"{results['model']} (latent {results['latent_dim']}), {results['machine']}, "
        f"torch {results['torch']}{'; **tiny run**' if results['tiny'] else ''}.",
        "",
        "### Importance-weighted log-likelihood",
        "",
        f"log p(x_S) of MNIST test examples for every subset S of (image, label) "
        f"({', '.join(lk['subsets'])}), all from the same K = {k} importance samples per "
        f"example (chunks of {lk['k_chunk']}) of a defensive mixture of the model's "
        f"{lk['components']} proposal components and the prior (weight {lk['prior_weight']:g}). "
        f"The batched call takes {n['batched']} examples at once (`likelihood.batch_size` of "
        "`make train`), the loops one example per call. Compared: seconds of a call / "
        f"(examples x K), median and best of {lk['repeats']} calls each, in rotating order. "
        "On the batched call's noise, the loops must reproduce its estimates: max |difference| "
        f"in float32 (rounding; |log p(image, label)| is about {abs(lk['mean_estimate']):.0f} "
        f"nats) and on a float64 copy (K = {lk['check_k']}, first {n['per_sample_loop']} examples).",
        "",
        *table(
            "implementation | examples x K | s / call (median) | us / (example, sample): median "
            "| best | batched is x faster: median | best | max abs diff: float32 | float64",
            rows,
        ),
        "",
        verdict(lk),
        "",
        "### Default evaluation of one checkpoint",
        "",
        f"`mwvae.evaluation.suite.evaluate` with the settings of `make train` (K = {lk_set['k']} "
        f"on {lk_set['num_samples']} test examples in batches of {lk_set['batch_size']}, "
        f"{settings['joint_samples']} joint-coherence samples, figures: "
        f"{settings.get('figures')}) on {sizes['test']} test examples, after one training epoch "
        f"of the same model ({sizes['train']} examples, {ev['epoch_batches']} batches of "
        f"{ev['batch_size']}, plain PyTorch loop). Classifier cache: {cls['cache']} "
        f"({cls['seconds']:.1f} s, outside the timing; test accuracy "
        + ", ".join(f"{m} {a:.4f}" for m, a in cls["test_accuracy"].items())
        + "). Each is timed once; on a shared machine the CPU-time ratio is the steadier one.",
        "",
        *table(
            "quantity | wall time | CPU time (all threads)",
            [
                f"one training epoch | {ev['epoch_seconds']:.1f} s | {cpu['epoch']:.1f} s",
                f"default evaluation | {ev['evaluate_seconds']:.1f} s | {cpu['evaluate']:.1f} s",
                f"**evaluation / epoch** | **{ev['evaluation_in_epochs']:.2f} epochs** | "
                f"{ev['evaluation_in_epochs_cpu']:.2f} epochs",
            ],
        ),
        "",
        "Where its time goes: `likelihood_metrics`, timed alone with the same settings, and "
        "the rest of `evaluate`:",
        "",
        *table(
            "part | s | share",
            [
                f"`likelihood_metrics` | {ev['evaluate_seconds'] - rest:.2f} | {100 - share:.1f}%",
                f"the rest (by difference) | {rest:.2f} | {share:.1f}%",
            ],
        ),
    ]
    return "\n".join(lines) + "\n"
