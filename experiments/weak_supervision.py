"""Tabulate and plot a weak-supervision sweep (`make exp-weak`).

    python experiments/weak_supervision.py outputs/weak/<sweep> [--figure PATH]

Reads every finished run below the sweep folder (its `metrics.json`, its
model and its `data.paired_fraction`), prints a Markdown table of the
cross-modal metrics per model and paired fraction (mean +- std when a sweep
has several seeds), and draws them against the paired fraction.
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402

from compare import cell, ordered, read_runs  # noqa: E402  (experiments/ is the script's folder)

METRICS = {
    "test/coherence/image_to_label": "image -> label accuracy",
    "test/coherence/label_to_image": "label -> image coherence",
    "test/coherence_class_mean/label_to_image": (
        "label -> image coherence with the class-mean private code (FMW-VAE)"
    ),
}
CHANCE = 0.1  # ten digits

Results = dict[str, dict[float, list[dict[str, float]]]]  # model -> fraction -> runs' metrics


def paired_fraction(run: Path) -> float:
    config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    return float(config["data"].get("paired_fraction", 1.0))


def read_results(sweep: Path) -> Results:
    results: Results = defaultdict(lambda: defaultdict(list))
    for model, runs in read_runs(sweep).items():
        for run, metrics in runs:
            results[model][paired_fraction(run)].append(metrics)
    return results


def table(results: Results) -> str:
    fractions = sorted({f for by_fraction in results.values() for f in by_fraction}, reverse=True)
    lines = []
    for key, title in METRICS.items():
        lines += [
            f"**{title}** (chance {CHANCE})",
            "",
            "| model | " + " | ".join(f"paired {f:g}" for f in fractions) + " |",
            "|---|" + "---|" * len(fractions),
        ]
        for model in ordered(results):
            if not any(key in m for runs in results[model].values() for m in runs):
                continue  # a metric only some models have
            cells = [
                cell([m[key] for m in results[model].get(f, []) if key in m]) for f in fractions
            ]
            lines.append(f"| `{model}` | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(results: Results, path: Path) -> Path:
    figure, axes = plt.subplots(1, len(METRICS), figsize=(5 * len(METRICS), 3.8), sharey=True)
    for ax, (key, title) in zip(axes, METRICS.items(), strict=True):
        for model in ordered(results):
            points = sorted(  # (fraction, mean, std over seeds)
                (f, statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0)
                for f, runs in results[model].items()
                if (values := [m[key] for m in runs if key in m])
            )
            if points:
                x, mean, std = zip(*points, strict=True)
                ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=model)
        ax.axhline(CHANCE, color="grey", linestyle=":", label="chance")
        ax.set(xscale="log", xlabel="paired fraction of the training set", title=title)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (mean, bars: std over seeds)")
    axes[-1].legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--figure", type=Path, help="default: <sweep>/weak_supervision.png")
    args = parser.parse_args()
    results = read_results(args.sweep)
    if not results:
        raise SystemExit(f"no finished run (metrics.json) below {args.sweep}")
    print(table(results))
    print(f"Figure: {plot(results, args.figure or args.sweep / 'weak_supervision.png')}")


if __name__ == "__main__":
    main()
