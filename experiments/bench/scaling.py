"""Scaling: the time of one training step of each model as the batch size, the
latent size and the number of modalities M grow, on MNIST-shaped data.

    python experiments/bench/scaling.py [--tiny] [--json PATH] [--plot PATH]

One step is what a training loop does per batch: `model.objective(batch).loss`,
backward, and a step of the model's own `configure_optimizers()` optimizer.
Models are built as `make train` builds them (`compose_config` +
`build_model`), with `latent.dim` set and, for M > 2, image modalities
`image2`, `image3`, ... with the spec of `image` added (as `data=mnist3`
does). The data is synthetic and in memory (fixed seed): images uniform in
[0, 1] of shape (B, 1, 28, 28), labels uniform in 0..9.

Every configuration is warmed up, then timed in rounds: each round visits all
configurations in a fresh random order and times a few consecutive steps of
each (about `visit_seconds`), so that drift on a shared machine spreads over
all of them; rounds go on past `min_rounds` while within `rounds_budget_seconds`.
The report gives the median step time and the fastest step of each
configuration. Torch's thread count is left as it is.

The encoder and decoder passes and the latent samples of one step are counted,
not assumed: forward hooks on the encoders and decoders and a counter on
`DiagGaussian.rsample` during forward-only passes of the same objective on a
small batch, many of them where the count is random (mVAE-PoE draws its
subsets per step).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import torch
from omegaconf import DictConfig, open_dict

from mwvae.config import compose_config
from mwvae.gaussians import DiagGaussian
from mwvae.train import build_model

ROOT = Path(__file__).resolve().parents[2]
NUM_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)
# Models whose step is timed against the batch and latent sizes; the sweep over M adds FMW-VAE.
SIZE_MODELS = ("mw_vae", "mvae_poe", "mopoe", "mmvae")
MODALITY_MODELS = ("mw_vae", "mvae_poe", "mopoe", "mmvae", "fmw_vae")
SWEEP_TITLES = {
    "batch_size": "Batch size",
    "latent_dim": "Latent size",
    "num_modalities": "Number of modalities M",
}


@dataclass(frozen=True)
class Plan:
    """What to time and how long: the swept values, the fixed values of the
    other two axes, and the warm-up and timing schedule."""

    batch_sizes: tuple[int, ...]
    latent_dims: tuple[int, ...]
    modality_counts: tuple[int, ...]
    size_models: tuple[str, ...]
    modality_models: tuple[str, ...]
    base_batch_size: int
    base_latent_dim: int
    warmup_steps: int
    min_rounds: int
    max_rounds: int
    rounds_budget_seconds: float  # no new round starts past this (once min_rounds are done)
    visit_seconds: float  # consecutive steps of one configuration per visit: about this long
    max_steps_per_visit: int
    # Forward passes over which the calls of one step are counted, where they
    # are random (mVAE-PoE's subsets for M > 3); two passes elsewhere.
    count_repeats: int


FULL = Plan(
    batch_sizes=(32, 64, 128, 256, 512, 1024),
    latent_dims=(10, 20, 64, 256),
    modality_counts=(2, 3, 5),
    size_models=SIZE_MODELS,
    modality_models=MODALITY_MODELS,
    base_batch_size=128,
    base_latent_dim=20,
    warmup_steps=2,
    min_rounds=3,
    max_rounds=8,
    rounds_budget_seconds=40.0,
    visit_seconds=0.05,
    max_steps_per_visit=6,
    count_repeats=20,
)
TINY = Plan(
    batch_sizes=(16, 32),
    latent_dims=(10, 20),
    modality_counts=(2, 3),
    size_models=("mw_vae", "mopoe"),
    modality_models=("mw_vae", "mopoe"),
    base_batch_size=16,
    base_latent_dim=20,
    warmup_steps=1,
    min_rounds=2,
    max_rounds=2,
    rounds_budget_seconds=0.0,
    visit_seconds=0.0,
    max_steps_per_visit=1,
    count_repeats=2,
)


# ---------------------------------------------------------------------- cost in M
def _exact(value: float) -> dict[str, float]:
    return {"min": value, "max": value, "mean": value}


def poe_random_subset_decoders(m: int, random_subsets: int) -> dict[str, float]:
    """Decoder passes of mVAE-PoE's random subsets: `random_subsets` subsets
    whose size is uniform in 2..M-1 (none for M <= 2)."""
    if m <= 2:
        return _exact(0)
    return {
        "min": 2 * random_subsets,
        "max": (m - 1) * random_subsets,
        "mean": (m + 1) / 2 * random_subsets,
    }


def expected_calls(model: str, m: int, random_subsets: int = 1) -> dict[str, dict[str, float]]:
    """Encoder passes, decoder passes and latent samples (one ELBO term and one
    KL term or estimate each) of one training step, read off the model code.
    Every model encodes each modality once and reuses its posterior."""
    if model in ("mw_vae", "fmw_vae"):  # each modality decoded from its own posterior's sample
        decoders, samples = _exact(m), _exact(m)
    elif model == "mvae_poe":  # joint ELBO (M decoders), M unimodal ELBOs, random subsets
        extra = poe_random_subset_decoders(m, random_subsets)
        decoders = {k: 2 * m + v for k, v in extra.items()}
        samples = _exact(1 + m + (random_subsets if m > 2 else 0))
    elif model == "mopoe":  # every non-empty subset's PoE decodes all M modalities
        decoders, samples = _exact(m * (2**m - 1)), _exact(2**m - 1)
    elif model == "mmvae":  # each expert's sample decoded by all M decoders
        decoders, samples = _exact(m * m), _exact(m)
    else:
        raise KeyError(f"no cost formula for model {model!r}")
    return {"encoder": _exact(m), "decoder": decoders, "latent_samples": samples}


COST_FORMULAS = {
    "mw_vae": {
        "decoder": "M",
        "latent_samples": "M",
        "note": "each modality decoded from a sample of its own posterior, M KL terms; "
        "mean pairwise W2^2 of the M(M-1)/2 pairs in O(M) via the barycenter",
    },
    "fmw_vae": {
        "decoder": "M",
        "latent_samples": "M",
        "note": "as MW-VAE on [shared, private] codes; W2 on the shared parts only",
    },
    "mvae_poe": {
        "decoder": "2M + r E[s] (M > 2)",
        "latent_samples": "1 + M + r (M > 2)",
        "note": "joint PoE ELBO (M decoders) + M unimodal ELBOs + r random subsets of size "
        "s ~ U{2..M-1}, E[s] = (M+1)/2",
    },
    "mopoe": {
        "decoder": "M (2^M - 1)",
        "latent_samples": "2^M - 1",
        "note": "every non-empty subset's PoE sampled once and decoded by all M decoders",
    },
    "mmvae": {
        "decoder": "M^2",
        "latent_samples": "M",
        "note": "each expert's sample decoded by all M decoders; its KL estimate evaluates "
        "all M expert densities (M^2 log-densities)",
    },
}


@contextlib.contextmanager
def counting_calls(model: torch.nn.Module) -> Iterator[dict[str, int]]:
    """Counts the encoder and decoder forward passes and the posterior samples
    (`DiagGaussian.rsample`) made inside the block."""
    counts = {"encoder": 0, "decoder": 0, "latent_samples": 0}

    def counter(kind: str) -> Callable:
        def hook(module, inputs, output) -> None:
            counts[kind] += 1

        return hook

    handles = [enc.register_forward_hook(counter("encoder")) for enc in model.encoders.values()]
    handles += [dec.register_forward_hook(counter("decoder")) for dec in model.decoders.values()]
    original_rsample = DiagGaussian.rsample

    def counted_rsample(self: DiagGaussian) -> torch.Tensor:
        counts["latent_samples"] += 1
        return original_rsample(self)

    DiagGaussian.rsample = counted_rsample
    try:
        yield counts
    finally:
        DiagGaussian.rsample = original_rsample
        for handle in handles:
            handle.remove()


def measure_calls(model: torch.nn.Module, repeats: int) -> dict[str, dict[str, float]]:
    """Min, max and mean per step of each counted call over `repeats`
    forward passes of the training objective on a 4-example batch."""
    batch = synthetic_batch(model.modality_names, 4, seed=1)
    per_step: dict[str, list[int]] = {"encoder": [], "decoder": [], "latent_samples": []}
    model.train()
    with torch.no_grad():
        for _ in range(repeats):
            with counting_calls(model) as counts:
                model.objective(batch)
            for kind, n in counts.items():
                per_step[kind].append(n)
    return {
        kind: {"min": min(ns), "max": max(ns), "mean": statistics.fmean(ns)}
        for kind, ns in per_step.items()
    }


# ---------------------------------------------------------------------- models and data
def modality_names(num_modalities: int) -> list[str]:
    """image, label, then image2, image3, ... (data=mnist3's naming)."""
    return ["image", "label", *(f"image{k}" for k in range(2, num_modalities))]


def model_config(base: DictConfig, latent_dim: int, num_modalities: int) -> DictConfig:
    """`base` (composed for a model on data=mnist) with `latent.dim` set and
    image modalities added up to `num_modalities`."""
    cfg = base.copy()
    with open_dict(cfg):
        cfg.latent.dim = latent_dim
        for name in modality_names(num_modalities)[2:]:
            cfg.data.modalities[name] = cfg.data.modalities.image
    return cfg


def synthetic_batch(names: list[str], batch_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Images uniform in [0, 1] and labels uniform in 0..9, from a fixed seed."""
    generator = torch.Generator().manual_seed(seed)
    return {
        name: torch.randint(0, NUM_CLASSES, (batch_size,), generator=generator)
        if name == "label"
        else torch.rand(batch_size, *IMAGE_SHAPE, generator=generator)
        for name in names
    }


def train_step(model, optimizer, batch) -> None:
    loss = model.objective(batch).loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def timed_step(model, optimizer, batch) -> float:
    start = time.perf_counter()
    train_step(model, optimizer, batch)
    return time.perf_counter() - start


@dataclass
class Trainee:
    """A built model and its optimizer, shared by the configurations that
    differ only in batch size."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer


@dataclass
class Config:
    """One timed point: a model at a batch size, latent size and M."""

    model: str
    batch_size: int
    latent_dim: int
    num_modalities: int

    @property
    def key(self) -> tuple[str, int, int, int]:
        return (self.model, self.batch_size, self.latent_dim, self.num_modalities)


def sweep_configs(plan: Plan) -> dict[str, list[Config]]:
    """The configurations of each sweep; the point where all three meet is shared."""
    b, d = plan.base_batch_size, plan.base_latent_dim
    return {
        "batch_size": [Config(m, x, d, 2) for m in plan.size_models for x in plan.batch_sizes],
        "latent_dim": [Config(m, b, x, 2) for m in plan.size_models for x in plan.latent_dims],
        "num_modalities": [
            Config(m, b, d, x) for m in plan.modality_models for x in plan.modality_counts
        ],
    }


def time_configs(
    configs: list[Config], trainees, plan: Plan
) -> tuple[dict[tuple, list[float]], int]:
    """Seconds of each timed step, per configuration, interleaved in rounds;
    and the number of rounds (`min_rounds`, then more while within budget)."""
    batches = {
        (c.batch_size, c.num_modalities): synthetic_batch(
            modality_names(c.num_modalities), c.batch_size
        )
        for c in configs
    }

    def parts(c: Config):
        trainee = trainees[(c.model, c.latent_dim, c.num_modalities)]
        return trainee.model, trainee.optimizer, batches[(c.batch_size, c.num_modalities)]

    steps_per_visit = {}
    for c in configs:
        warm = [timed_step(*parts(c)) for _ in range(plan.warmup_steps)]
        visit = round(plan.visit_seconds / warm[-1]) if warm else 1
        steps_per_visit[c.key] = min(max(visit, 1), plan.max_steps_per_visit)

    seconds: dict[tuple, list[float]] = {c.key: [] for c in configs}
    order = list(configs)
    started = time.perf_counter()
    rounds = 0
    while rounds < plan.max_rounds and (
        rounds < plan.min_rounds or time.perf_counter() - started < plan.rounds_budget_seconds
    ):
        random.Random(rounds).shuffle(order)
        for c in order:
            seconds[c.key] += [timed_step(*parts(c)) for _ in range(steps_per_visit[c.key])]
        rounds += 1
    return seconds, rounds


def run(tiny: bool = False) -> dict:
    """Median milliseconds per training step along the three sweeps, and the
    measured and expected calls per step along M. `tiny`: a seconds-long run
    of the same code on two models and two values per axis (for the tests)."""
    plan = TINY if tiny else FULL
    started = time.perf_counter()
    sweeps = sweep_configs(plan)
    unique = list({c.key: c for configs in sweeps.values() for c in configs}.values())
    base_configs = {  # every model of MODALITY_MODELS, whose calls are counted even when untimed
        name: compose_config([f"model={name}", "logger=none", "paths.output_dir=outputs/bench"])
        for name in dict.fromkeys([*plan.size_models, *MODALITY_MODELS])
    }

    trainees = {}
    for c in unique:
        trainee_key = (c.model, c.latent_dim, c.num_modalities)
        if trainee_key not in trainees:
            torch.manual_seed(0)
            model = build_model(model_config(base_configs[c.model], *trainee_key[1:]))
            model.train()
            trainees[trainee_key] = Trainee(model, model.configure_optimizers())

    # Calls are counted for every model of the M sweep, timed or not (a few small passes).
    random_subsets = int(base_configs["mvae_poe"].model.num_random_subsets)
    call_counts: dict[str, dict[str, dict]] = {}
    expected: dict[str, dict[str, dict]] = {}
    for name in MODALITY_MODELS:
        call_counts[name], expected[name] = {}, {}
        for m in plan.modality_counts:
            trainee = trainees.get((name, plan.base_latent_dim, m))
            if trainee is None:
                torch.manual_seed(0)
                model = build_model(model_config(base_configs[name], plan.base_latent_dim, m))
            else:
                model = trainee.model
            expected[name][str(m)] = expected_calls(name, m, random_subsets)
            varies = any(e["min"] != e["max"] for e in expected[name][str(m)].values())
            repeats = plan.count_repeats if varies else 2
            call_counts[name][str(m)] = measure_calls(model, repeats)
    timing_started = time.perf_counter()
    seconds, rounds = time_configs(unique, trainees, plan)

    sweep_results = {}
    for axis, configs in sweeps.items():
        models = list(dict.fromkeys(c.model for c in configs))
        values = sorted({getattr(c, axis) for c in configs})
        median_ms = {name: [] for name in models}
        min_ms = {name: [] for name in models}
        steps = {name: [] for name in models}
        for c in configs:
            median_ms[c.model].append(1e3 * statistics.median(seconds[c.key]))
            min_ms[c.model].append(1e3 * min(seconds[c.key]))
            steps[c.model].append(len(seconds[c.key]))
        fixed = {
            "batch_size": plan.base_batch_size,
            "latent_dim": plan.base_latent_dim,
            "num_modalities": 2,
        }
        fixed.pop(axis)
        sweep_results[axis] = {
            "values": values,
            "fixed": fixed,
            "median_ms": median_ms,
            "min_ms": min_ms,
            "steps": steps,
        }
    return {
        "date": datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
        "tiny": tiny,
        "plan": asdict(plan),
        "rounds": rounds,
        "mvae_poe_random_subsets": random_subsets,
        "sweeps": sweep_results,
        "call_counts": call_counts,
        "expected_calls": expected,
        "cost_formulas": COST_FORMULAS,
        "timing_seconds": time.perf_counter() - timing_started,
        "wall_seconds": time.perf_counter() - started,
    }


# ---------------------------------------------------------------------- report
def _ms(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _cell(median: float, fastest: float) -> str:
    return f"{_ms(median)} ({_ms(fastest)})"


def _ratio_cell(medians: list[float], fastest: list[float]) -> str:
    """Last over first, of the medians (of the fastest steps)."""
    return f"{medians[-1] / medians[0]:.2f}x ({fastest[-1] / fastest[0]:.2f}x)"


def _count(stats: dict[str, float]) -> str:
    if stats["min"] == stats["max"]:
        return f"{stats['min']:g}"
    return f"{stats['mean']:g} ({stats['min']:g}-{stats['max']:g})"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _fixed_text(fixed: dict[str, int]) -> str:
    names = {"batch_size": "batch", "latent_dim": "latent", "num_modalities": "M"}
    return ", ".join(f"{names[k]}={v}" for k, v in fixed.items())


def to_markdown(results: dict, figure: str | None = None) -> str:
    """The report section: ms per step along each sweep (median, and fastest in
    brackets), per-example cost, the ratios between the ends of each sweep,
    and the calls per step along M, measured and by formula."""
    sweeps, plan = results["sweeps"], results["plan"]
    spreads = sorted(
        median / fastest
        for sweep in sweeps.values()
        for name in sweep["median_ms"]
        for median, fastest in zip(sweep["median_ms"][name], sweep["min_ms"][name], strict=True)
    )
    lines = [
        "## Scaling",
        "",
        "Time of one training step (objective, backward, optimizer step; synthetic "
        f"MNIST-shaped data) on {results['machine']}, torch {results['torch']}, "
        f"{results['date']}. Each configuration: {plan['warmup_steps']} warm-up steps, then "
        f"{results['rounds']} interleaved rounds (random order) of 1-"
        f"{plan['max_steps_per_visit']} consecutive steps; timing took "
        f"{results['timing_seconds']:.0f} s of the {results['wall_seconds']:.0f} s run. "
        "Cells: median ms (fastest step in brackets). Other jobs share this machine: the "
        f"median step is {statistics.median(spreads):.2f}x the fastest of its configuration "
        f"in the median configuration, {spreads[-1]:.2f}x at worst. Where the two disagree, "
        "the fastest step is the better estimate of the cost itself (interference only adds "
        "time); read ratios, not digits.",
        "",
    ]
    if figure:
        lines += [f"![Step time against batch size, latent size and M]({figure})", ""]

    for axis, sweep in sweeps.items():
        values = sweep["values"]
        first, last = values[0], values[-1]
        ends = f"{last} / {first}"
        lines += [f"### {SWEEP_TITLES[axis]} ({_fixed_text(sweep['fixed'])}), ms per step", ""]
        rows = [
            [
                name,
                *(_cell(t, f) for t, f in zip(ms, sweep["min_ms"][name], strict=True)),
                _ratio_cell(ms, sweep["min_ms"][name]),
            ]
            for name, ms in sweep["median_ms"].items()
        ]
        lines += [*_table(["model", *map(str, values), ends], rows), ""]
        if axis == "batch_size":
            lines += [
                "Microseconds per example (step time / batch size); the last column is the "
                f"per-example cost at batch {last} relative to batch {first}:",
                "",
            ]
            rows = []
            for name, ms in sweep["median_ms"].items():
                per_example = [1e3 * t / b for t, b in zip(ms, values, strict=True)]
                fastest = [1e3 * t / b for t, b in zip(sweep["min_ms"][name], values, strict=True)]
                rows.append(
                    [
                        name,
                        *(f"{u:.0f} ({f:.0f})" for u, f in zip(per_example, fastest, strict=True)),
                        _ratio_cell(per_example, fastest),
                    ]
                )
            lines += [*_table(["model", *map(str, values), ends], rows), ""]
        if axis == "num_modalities":
            counts = results["call_counts"]
            lines += [
                "Against the work: ms per decoder pass (step time / measured mean decoder "
                f"passes per step), and the ratio M={last} / M={first} of step time and of "
                "decoder passes:",
                "",
            ]
            rows = []
            for name, ms in sweep["median_ms"].items():
                decoders = [counts[name][str(m)]["decoder"]["mean"] for m in values]
                fastest = sweep["min_ms"][name]
                rows.append(
                    [
                        name,
                        *(
                            _cell(t / n, f / n)
                            for t, f, n in zip(ms, fastest, decoders, strict=True)
                        ),
                        _ratio_cell(ms, fastest),
                        f"{decoders[-1] / decoders[0]:.2f}x",
                    ]
                )
            header = ["model", *map(str, values), "step-time ratio", "decoder-pass ratio"]
            lines += [*_table(header, rows), ""]

    lines += _cost_section(results)
    return "\n".join(lines)


def _cost_section(results: dict) -> list[str]:
    counts, formulas = results["call_counts"], results["cost_formulas"]
    ms = sorted({int(m) for per_model in counts.values() for m in per_model})
    lines = [
        "### Cost in the number of modalities M (calls per training step)",
        "",
        "Counted by forward hooks on the encoders and decoders and a counter on posterior "
        "samples during forward passes of the training objective (2 passes; "
        f"{results['plan']['count_repeats']} where the formula is random: mean (min-max)). "
        "Every model makes exactly M encoder passes (each posterior is computed once and "
        "reused). A latent sample is one ELBO term with one KL term (MMVAE: a Monte-Carlo KL "
        f"estimate). mVAE-PoE: r = {results['mvae_poe_random_subsets']} random subset(s) per "
        "step.",
        "",
    ]
    header = [
        "model",
        "decoder passes",
        *(f"M={m}" for m in ms),
        "latent samples / KL terms",
        *(f"M={m}" for m in ms),
        "what is computed",
    ]
    rows = [
        [
            name,
            formulas[name]["decoder"],
            *(_count(per_m[str(m)]["decoder"]) for m in ms),
            formulas[name]["latent_samples"],
            *(_count(per_m[str(m)]["latent_samples"]) for m in ms),
            formulas[name]["note"],
        ]
        for name, per_m in counts.items()
    ]
    lines += _table(header, rows)
    mismatches = [
        f"{name} M={m} {kind}"
        for name, per_m in counts.items()
        for m, measured in per_m.items()
        for kind, stats in measured.items()
        if not _within(stats, results["expected_calls"][name][m][kind])
    ]
    verdict = (
        "Measured counts match the formulas read off the code (random counts: within their range)."
        if not mismatches
        else f"Measured counts differ from the formulas: {', '.join(mismatches)}."
    )
    return [*lines, "", verdict, ""]


def _within(measured: dict[str, float], expected: dict[str, float]) -> bool:
    """Deterministic counts equal; random ones inside the expected range."""
    if expected["min"] == expected["max"]:
        return measured["min"] == measured["max"] == expected["min"]
    return expected["min"] <= measured["min"] <= measured["max"] <= expected["max"]


def plot(results: dict, path: Path) -> None:
    """One PNG, three panels: ms per step against batch size, latent size and
    M, log axes, one line per model (same colour in every panel): the median
    solid, the fastest step dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    names = list(dict.fromkeys(n for s in results["sweeps"].values() for n in s["median_ms"]))
    colours = {name: f"C{i}" for i, name in enumerate(names)}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, (axis, sweep) in zip(axes, results["sweeps"].items(), strict=True):
        for name, ms in sweep["median_ms"].items():
            ax.plot(sweep["values"], ms, "o-", color=colours[name], label=name)
            ax.plot(sweep["values"], sweep["min_ms"][name], ":", color=colours[name], alpha=0.7)
        ax.set_yscale("log")
        if axis == "num_modalities":
            ax.set_xticks(sweep["values"])
        else:
            ax.set_xscale("log", base=2)
            ax.set_xticks(sweep["values"], [str(v) for v in sweep["values"]])
            ax.xaxis.set_minor_locator(NullLocator())  # keep the y minor labels
        ax.set_xlabel(f"{SWEEP_TITLES[axis]} ({_fixed_text(sweep['fixed'])})")
        ax.set_ylabel("ms per training step (median; dotted: fastest)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Training-step time, {results['machine']}")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--tiny", action="store_true", help="a seconds-long smoke run")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--plot", type=Path, help="write the three-panel PNG here")
    args = parser.parse_args()

    results = run(tiny=args.tiny)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    figure = None
    if args.plot:
        plot(results, args.plot)
        figure = str(args.plot)
    print(to_markdown(results, figure))


if __name__ == "__main__":
    main()
