"""Tabulate and plot a weak-supervision sweep (`make exp-weak`).

    python experiments/weak_supervision.py SOURCE [SOURCE ...] [--figure PATH]

SOURCEs are sweep folders or folders of run records (`experiments/record.py`);
each run counts with its model, `data.paired_fraction` and training budget.
Prints a Markdown table of the cross-modal metrics per model and paired
fraction (mean +- std over seeds; the seeds and epochs of each row beside
it) and, with `--figure`, draws them against the paired fraction.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from records import budget_text, cell, group, read_records, save_figure  # noqa: E402

METRICS = {
    "test/coherence/image_to_label": "image -> label accuracy",
    "test/coherence/label_to_image": "label -> image coherence",
    "test/coherence_class_mean/label_to_image": (
        "label -> image coherence with the class-mean private code (FMW-VAE)"
    ),
}
CHANCE = 0.1  # ten digits

# (model, budget) -> paired fraction -> the runs' metrics
Results = dict[tuple[str, tuple], dict[float, list[dict[str, float]]]]


def paired_fraction(record: dict) -> float:
    return float(record["config"]["data"].get("paired_fraction", 1.0))


def read_results(sources: list[Path]) -> Results:
    results: Results = {}
    for key, records in group(read_records(sources)).items():
        by_fraction = results.setdefault(key, {})
        for r in records:
            by_fraction.setdefault(paired_fraction(r), []).append(r["metrics"])
    return results


def seeds(by_fraction: dict[float, list]) -> str:
    counts = sorted({len(runs) for runs in by_fraction.values()})
    return "-".join(map(str, (counts[0], counts[-1]) if len(counts) > 1 else counts))


def table(results: Results) -> str:
    fractions = sorted({f for by_fraction in results.values() for f in by_fraction}, reverse=True)
    lines = []
    for key, title in METRICS.items():
        lines += [
            f"**{title}** (chance {CHANCE})",
            "",
            "| model | seeds | epochs x batches | "
            + " | ".join(f"paired {f:g}" for f in fractions)
            + " |",
            "|---|---|---|" + "---|" * len(fractions),
        ]
        for (name, trained), by_fraction in results.items():
            if not any(key in m for runs in by_fraction.values() for m in runs):
                continue  # a metric only some models have
            cells = [cell([m[key] for m in by_fraction.get(f, []) if key in m]) for f in fractions]
            lines.append(
                f"| `{name}` | {seeds(by_fraction)} | {budget_text(trained)} | "
                + " | ".join(cells)
                + " |"
            )
        lines.append("")
    return "\n".join(lines)


def plot(results: Results, path: Path) -> Path:
    figure, axes = plt.subplots(1, len(METRICS), figsize=(5 * len(METRICS), 3.8), sharey=True)
    several_budgets = len({trained for _, trained in results}) > 1
    for ax, (key, title) in zip(axes, METRICS.items(), strict=True):
        for (name, trained), by_fraction in results.items():
            points = sorted(  # (fraction, mean, std over seeds)
                (f, statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0)
                for f, runs in by_fraction.items()
                if (values := [m[key] for m in runs if key in m])
            )
            if points:
                x, mean, std = zip(*points, strict=True)
                label = f"{name}, {budget_text(trained)}" if several_budgets else name
                ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=label)
        ax.axhline(CHANCE, color="grey", linestyle=":", label="chance")
        ax.set(xscale="log", xlabel="paired fraction of the training set", title=title)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (mean, bars: std over seeds)")
    axes[-1].legend(fontsize=8)
    return save_figure(figure, path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("sources", type=Path, nargs="+")
    parser.add_argument("--figure", type=Path, help="write the plot here")
    args = parser.parse_args(argv)
    results = read_results(args.sources)
    if not results:
        raise SystemExit(f"no finished run or record in {[str(p) for p in args.sources]}")
    print(table(results))
    if args.figure:
        print(f"Figure: {plot(results, args.figure)}")


if __name__ == "__main__":
    main()
