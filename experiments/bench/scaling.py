"""Scaling: the time of one training step (objective, backward, optimizer
step) as the batch size, the latent size and the number of modalities M grow,
on synthetic MNIST-shaped data; and the calls per step along M, counted
(encoders and decoders by forward hooks, latent samples as torch's normal
draws) against the formulas in COSTS.

For M > 2, image modalities `image2`, ... copy `image` (as `data=mnist3`).
Beside the sweeps, every multimodal model takes steps at M = 5 on
PolyMNIST's shapes and networks (`data=polymnist`: five 3x28x28 images,
convolutional encoders and decoders; synthetic data), at the base batch and
latent sizes.
Configurations are timed in rounds, each visiting all of them in a fresh
random order for a few steps, so that drift on a shared machine spreads over
all of them.
"""

from __future__ import annotations

import copy
import functools
import random
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf, open_dict

from experiments.bench.common import NormalDraws, build, compose, machine, synthetic_batch, table
from experiments.bench.common import train_step as step
from mwvae.config.catalog import model_class, model_names

AXES = {
    "batch_size": "Batch size",
    "latent_dim": "Latent size",
    "num_modalities": "Number of modalities M",
}
SHORT = {"batch_size": "batch", "latent_dim": "latent", "num_modalities": "M"}
KINDS = ("encoder", "decoder", "latent_samples")
# Per model class, Python expressions of the calls per step (encoder passes,
# decoder passes, latent samples), evaluated as printed: in M, s (a random
# subset's size, uniform in 2..M-1) and the model config's options.
COSTS = {
    "MWVAE": ("M", "M", "M", "each modality decoded from its own posterior's sample"),
    "FMWVAE": ("M", "M", "M", "as MW-VAE, on [shared, private] codes"),
    "MVAEPoE": (
        "M",
        "M + subsample * (M + (M > 2) * num_random_subsets * s)",
        "1 + subsample * (M + (M > 2) * num_random_subsets)",
        "joint ELBO; with subsample, M unimodal ELBOs and random subsets of size s",
    ),
    "MoPoE": (
        "M",
        "M * ((2**M - 1) if subsets == 'all' or (subsets == 'auto' and M <= 3) else 1)",
        "(2**M - 1) if subsets == 'all' or (subsets == 'auto' and M <= 3) else 1",
        "every subset's PoE decoded by all M decoders (sampled: one subset per example)",
    ),
    "MMVAE": ("M", "M**2", "M", "each expert's sample decoded by all M decoders"),
    "MMVAEPlus": (
        "M",
        "M**2",
        "2 * M",
        "as MMVAE, K samples a batch; each stratum also draws the others' auxiliary codes",
    ),
    "MVTCAE": ("M", "M", "1", "the PoE's sample decoded by all M"),
    "JMVAE": ("M + 1", "M", "1", "the joint encoder's sample decoded by all M"),
    "JointMVAE": ("1", "M", "1", "one encoder over all modalities"),
}


# What is kept of a configuration's step times (seconds).
STATISTICS = {
    "median_ms": lambda s: 1e3 * statistics.median(s),
    "min_ms": lambda s: 1e3 * min(s),
    "steps": len,
}


@dataclass(frozen=True)
class Plan:
    batch_sizes: tuple[int, ...]
    latent_dims: tuple[int, ...]
    modality_counts: tuple[int, ...]
    base_batch_size: int
    base_latent_dim: int
    warmup_steps: int
    min_rounds: int
    max_rounds: int
    rounds_budget_seconds: float  # no new round past this, once min_rounds are done
    visit_seconds: float  # consecutive steps of a configuration per visit: about this long
    max_steps_per_visit: int
    count_repeats: int  # forward passes counted where the counts are random (else 2)
    models: int | None = None  # the first models of the catalog timed (None: all)


FULL = Plan(
    (32, 64, 128, 256, 512, 1024), (10, 20, 64, 256), (2, 3, 5), 128, 20, 2, 3, 8, 40, 0.05, 6, 20
)
TINY = Plan((16, 32), (10, 20), (2, 3), 16, 20, 1, 2, 2, 0.0, 0.0, 1, 2, models=2)


def expected(cost: tuple, m: int, options: dict) -> dict[str, dict[str, float]]:
    """Min, max and mean of each count at M = m (each is linear in s)."""

    def at(expression: str, s: float) -> float:
        return eval(expression, {"__builtins__": {}}, {**options, "M": m, "s": s})

    return {
        k: {"min": at(e, 2), "max": at(e, max(m - 1, 2)), "mean": at(e, (m + 1) / 2)}
        for k, e in zip(KINDS, cost, strict=False)
    }


@functools.cache
def composed(name: str, data: str = "mnist"):
    """A model's config on `data`, composed once (copied before it is changed)."""
    return compose(name, f"data={data}")


def model_config(name: str, latent_dim: int, modalities: int | str):
    """An int M: MNIST's image and label with copies of `image` up to M
    modalities; a data config's name ("polymnist"): that data's modalities."""
    cfg = copy.deepcopy(composed(name, modalities if isinstance(modalities, str) else "mnist"))
    with open_dict(cfg):
        cfg.latent.dim = latent_dim
        for k in range(2, modalities if isinstance(modalities, int) else 0):
            cfg.data.modalities[f"image{k}"] = cfg.data.modalities.image
    return cfg


def image_shape(model) -> tuple[int, ...]:
    """The shape of the model's image modalities (the first one's encoder input)."""
    first = next(n for n in model.modality_names if n != "label")
    return tuple(model.hparams.modalities[first]["encoder"]["input_shape"])


def count_calls(model, repeats: int) -> dict[str, dict[str, float]]:
    """Min, max and mean of each kind of call over `repeats` forward passes of
    the training objective on a 4-example batch."""
    batch = synthetic_batch(model.modality_names, 4, seed=1)
    calls, runs = Counter(), []
    hooks = [
        module.register_forward_hook(lambda *_, kind=kind: calls.update([kind]))
        for kind in ("encoder", "decoder")
        for module in getattr(model, f"{kind}s").values()
    ]
    for _ in range(repeats):
        calls.clear()
        with torch.no_grad(), NormalDraws() as draws:
            model.objective(batch)
        runs.append(Counter(calls, latent_samples=len(draws.drawn)))
    for hook in hooks:
        hook.remove()
    values = {k: [r[k] for r in runs] for k in KINDS}
    return {
        k: {"min": min(v), "max": max(v), "mean": statistics.fmean(v)} for k, v in values.items()
    }


def time_steps(inputs: dict[tuple, tuple], plan: Plan) -> tuple[dict[tuple, list], int]:
    """Seconds of each step per point, interleaved in rounds; the rounds."""

    def timed_step(point) -> float:
        start = time.perf_counter()
        step(*inputs[point])
        return time.perf_counter() - start

    visits = {}
    for p in inputs:
        warm = [timed_step(p) for _ in range(plan.warmup_steps)]
        visits[p] = min(max(round(plan.visit_seconds / warm[-1]), 1), plan.max_steps_per_visit)
    seconds, order, rounds, started = {p: [] for p in inputs}, list(inputs), 0, time.perf_counter()
    while rounds < plan.max_rounds and (
        rounds < plan.min_rounds or time.perf_counter() - started < plan.rounds_budget_seconds
    ):
        random.Random(rounds).shuffle(order)
        for p in order:
            seconds[p] += [timed_step(p) for _ in range(visits[p])]
        rounds += 1
    return seconds, rounds


def run(tiny: bool = False, models: list[str] | None = None) -> dict:
    """Median and fastest ms per step along the sweeps (default: the catalog's
    models, tiny: its first two), and the calls per step along M of every
    multimodal model asked for (counting is cheap), measured and by formula."""
    plan, started = TINY if tiny else FULL, time.perf_counter()
    counted = [n for n in models or model_names() if not model_class(n).unimodal]
    models = (models or model_names())[: plan.models]
    b, d = plan.base_batch_size, plan.base_latent_dim
    sweeps = {
        "batch_size": [(n, x, d, 2) for n in models for x in plan.batch_sizes],
        "latent_dim": [(n, b, x, 2) for n in models for x in plan.latent_dims],
        "num_modalities": [
            (n, b, d, x) for n in models if n in counted for x in plan.modality_counts
        ],
    }
    polymnist = [(n, b, d, "polymnist") for n in models if n in counted]

    @functools.cache
    def trainee(name: str, latent: int, m: int) -> tuple:
        model = build(model_config(name, latent, m))
        return model, model.configure_optimizers()

    batches, inputs = {}, {}
    for point in [*(p for sweep in sweeps.values() for p in sweep), *polymnist]:
        model, optimizer = trainee(point[0], *point[2:])
        key = (tuple(model.modality_names), point[1], 0, image_shape(model))
        batches[key] = batches.get(key) or synthetic_batch(*key)
        inputs[point] = (model, optimizer, batches[key])

    counts, expect, formulas = {}, {}, {}
    for name in counted:
        cost = COSTS.get(model_class(name).__name__)
        options = OmegaConf.to_container(composed(name).model, resolve=True)
        used = {v for e in (cost or ())[:3] for v in compile(e, "cost", "eval").co_names}
        formulas[name] = cost and {
            **dict(zip([*KINDS, "note"], cost, strict=True)),
            "options": {k: v for k, v in options.items() if k in used},
        }
        expect[name] = {str(m): cost and expected(cost, m, options) for m in plan.modality_counts}
        counts[name] = {
            m: count_calls(
                trainee(name, d, int(m))[0],
                plan.count_repeats if e and any(k["min"] != k["max"] for k in e.values()) else 2,
            )
            for m, e in expect[name].items()
        }

    timing_started = time.perf_counter()
    seconds, rounds = time_steps(inputs, plan)
    results = {}
    for index, (axis, sweep) in enumerate(sweeps.items(), 1):
        per = {
            n: [seconds[p] for p in sweep if p[0] == n] for n in dict.fromkeys(p[0] for p in sweep)
        }
        results[axis] = {
            "values": sorted({p[index] for p in sweep}),
            "fixed": {k: v for k, v in zip(AXES, (b, d, 2), strict=True) if k != axis},
            **{
                key: {n: [reduce(s) for s in t] for n, t in per.items()}
                for key, reduce in STATISTICS.items()
            },
        }
    five = {
        "fixed": {"batch_size": b, "latent_dim": d, "num_modalities": 5},
        **{
            key: {p[0]: reduce(seconds[p]) for p in polymnist} for key, reduce in STATISTICS.items()
        },
    }
    return {
        "machine": machine(),
        "torch": torch.__version__,
        "tiny": tiny,
        "plan": asdict(plan),
        "rounds": rounds,
        "sweeps": results,
        "polymnist": five,
        "call_counts": counts,
        "expected_calls": expect,
        "cost_formulas": formulas,
        "timing_seconds": time.perf_counter() - timing_started,
        "wall_seconds": time.perf_counter() - started,
    }


def _ms(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _cells(medians: list[float], fastest: list[float], per: list[float] | None = None) -> list:
    """median (fastest) per value, divided by `per`; then last over first."""
    t, f = (
        [x / p for x, p in zip(xs, per or [1] * len(xs), strict=True)] for xs in (medians, fastest)
    )
    return [
        *(f"{_ms(a)} ({_ms(b)})" for a, b in zip(t, f, strict=True)),
        f"{t[-1] / t[0]:.2f}x ({f[-1] / f[0]:.2f}x)",
    ]


def _count(stats: dict[str, float]) -> str:
    if stats["min"] == stats["max"]:
        return f"{stats['min']:g}"
    return f"{stats['mean']:g} ({stats['min']:g}-{stats['max']:g})"


def _fixed(sweep: dict) -> str:
    return ", ".join(f"{SHORT[k]}={v}" for k, v in sweep["fixed"].items())


def _within(measured: dict[str, float], expected: dict[str, float]) -> bool:
    """Deterministic counts equal; random ones inside the expected range."""
    if expected["min"] == expected["max"]:
        return measured["min"] == measured["max"] == expected["min"]
    return expected["min"] <= measured["min"] <= measured["max"] <= expected["max"]


def to_markdown(results: dict, figure: str | None = None) -> str:
    """ms per step along each sweep (median, fastest in brackets) with the
    ratio of its ends, per example and per decoder pass; the calls along M."""
    sweeps, plan, counts = results["sweeps"], results["plan"], results["call_counts"]
    spreads = sorted(
        t / f
        for s in sweeps.values()
        for n in s["median_ms"]
        for t, f in zip(s["median_ms"][n], s["min_ms"][n], strict=True)
    )
    lines = [
        "## Scaling",
        "",
        "Time of one training step (objective, backward, optimizer step; synthetic "
        f"MNIST-shaped data) on {results['machine']}, torch {results['torch']}. Each "
        f"configuration: {plan['warmup_steps']} warm-up steps, then {results['rounds']} "
        f"interleaved rounds (random order) of 1-{plan['max_steps_per_visit']} consecutive "
        f"steps; timing took {results['timing_seconds']:.0f} s of the "
        f"{results['wall_seconds']:.0f} s run. Cells: median ms (fastest step in brackets). The "
        f"median step is {statistics.median(spreads):.2f}x the fastest of its configuration in "
        f"the median configuration, {spreads[-1]:.2f}x at worst: other jobs share this machine, "
        "and only add time, so read ratios, not digits.",
        "",
        *([f"![Step time against batch size, latent size and M]({figure})", ""] if figure else []),
    ]
    for axis, sweep in sweeps.items():
        values, fast = sweep["values"], sweep["min_ms"]
        header = " | ".join(["model", *map(str, values), f"{values[-1]} / {values[0]}"])
        rows = [[n, *_cells(ms, fast[n])] for n, ms in sweep["median_ms"].items()]
        lines += [f"### {AXES[axis]} ({_fixed(sweep)}), ms per step", "", *table(header, rows), ""]
        if axis == "batch_size":
            per = [v / 1e3 for v in values]
            rows = [[n, *_cells(ms, fast[n], per)] for n, ms in sweep["median_ms"].items()]
            lines += ["Microseconds per example, and its ratio between the ends:", ""]
            lines += [*table(header, rows), ""]
        if axis == "num_modalities":
            rows = []
            for n, ms in sweep["median_ms"].items():
                passes = [counts[n][str(m)]["decoder"]["mean"] for m in values]
                cells = _cells(ms, fast[n], passes)[:-1] + _cells(ms, fast[n])[-1:]
                rows.append([n, *cells, f"{passes[-1] / passes[0]:.2f}x"])
            header = " | ".join(["model", *map(str, values), "step-time ratio", "decoder passes"])
            lines += ["Against the work: ms per decoder pass (step time / mean decoder passes);"]
            lines += ["the ratios between the ends of step time and of decoder passes:", ""]
            lines += [*table(header, rows), ""]

    five, mlp = results["polymnist"], sweeps["num_modalities"]
    if five["median_ms"]:
        at5 = mlp["values"].index(5) if 5 in mlp["values"] else None
        rows = [
            [
                n,
                f"{_ms(ms)} ({_ms(five['min_ms'][n])})",
                "-" if at5 is None else f"{ms / mlp['median_ms'][n][at5]:.1f}x",
            ]
            for n, ms in five["median_ms"].items()
        ]
        lines += [
            f"### M = 5 on PolyMNIST ({_fixed(five)}), ms per step",
            "",
            "`data=polymnist`'s networks (convolutional encoders and decoders of 3x28x28 "
            "images) on synthetic data; last column: against M = 5 with MNIST's MLPs above.",
            "",
            *table("model | ms per step | vs MNIST-shaped M = 5", rows),
            "",
        ]

    formulas, expect, ms = (
        results["cost_formulas"],
        results["expected_calls"],
        plan["modality_counts"],
    )
    header = ["model"] + [
        f"{k.replace('_', ' ')} | " + " | ".join(f"M={m}" for m in ms) for k in KINDS
    ]
    rows = []
    for name, per_m in counts.items():
        f = formulas[name] or {**dict.fromkeys(KINDS, "-"), "note": "no formula", "options": {}}
        options = ", ".join(f"{k}={v}" for k, v in f["options"].items())
        cells = [[f"`{f[k]}`", *(_count(per_m[str(m)][k]) for m in ms)] for k in KINDS]
        rows.append([name, *sum(cells, []), f["note"] + (f" ({options})" if options else "")])
    wrong = [
        f"{name} M={m} {kind}"
        for name, per_m in counts.items()
        for m, measured in per_m.items()
        for kind, stats in measured.items()
        if expect[name][m] and not _within(stats, expect[name][m][kind])
    ]
    lines += [
        "### Cost in the number of modalities M (calls per training step)",
        "",
        "Counted during forward passes of the training objective (2 passes; "
        f"{plan['count_repeats']} where the formula is random: mean (min-max)): encoder and "
        "decoder passes by forward hooks, latent samples (each an ELBO term with its KL term) "
        "as torch's normal draws. The formulas are evaluated as printed, in M, s (a random "
        "subset's size, uniform in 2..M-1) and the model config's options.",
        "",
        *table(" | ".join([*header, "what is computed"]), rows),
        "",
        f"Measured counts differ from the formulas: {', '.join(wrong)}."
        if wrong
        else "Measured counts match the formulas (random counts: within their range).",
        "",
    ]
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    """ms per step against batch size, latent size and M, log axes, a colour
    per model: the median solid, the fastest step dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    names = list(dict.fromkeys(n for s in results["sweeps"].values() for n in s["median_ms"]))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, (axis, sweep) in zip(axes, results["sweeps"].items(), strict=True):
        for name, ms in sweep["median_ms"].items():
            colour = f"C{names.index(name) % 10}"
            ax.plot(sweep["values"], ms, "o-", color=colour, label=name)
            ax.plot(sweep["values"], sweep["min_ms"][name], ":", color=colour, alpha=0.7)
        ax.set_yscale("log")
        if axis != "num_modalities":
            ax.set_xscale("log", base=2)
            ax.xaxis.set_minor_locator(NullLocator())  # keep the y minor labels
        ax.set_xticks(sweep["values"], [str(v) for v in sweep["values"]])
        ax.set_xlabel(f"{AXES[axis]} ({_fixed(sweep)})")
        ax.set_ylabel("ms per training step (median; dotted: fastest)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Training-step time, {results['machine']}")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
