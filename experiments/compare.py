"""Aggregate the runs of a comparison multirun into a Markdown report.

    python experiments/compare.py outputs/compare/<sweep> [--figures experiments/figures/compare]

Reads the `metrics.json` of every run below the sweep folder, updated by its
`eval/metrics.json` when the run was evaluated again (the model is the Hydra
choice recorded in each run's `.hydra/hydra.yaml`), prints a table of
mean +- std over seeds per model and metric, and copies the seed-0
reconstruction grids of each model into `--figures` for side-by-side panels.
The reading of the paper's claims is written by a person, below the table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from collections import defaultdict
from pathlib import Path

import yaml

from mwvae.config.catalog import model_names

ORDER = model_names()  # rows in the catalog's order; models it does not know come last
COLUMNS = {
    "coherence/image_to_label": "image -> label",
    "coherence/label_to_image": "label -> image",
    "coherence_class_mean/label_to_image": "label -> image, class-mean style",
    "coherence/joint": "joint coherence",
    "w2": "W2^2",
    "probe/image": "linear probe",
    "loglik/joint": "log p(x, y)",
    "loglik/image": "log p(x)",
    "loglik/label": "log p(y)",
    "loglik/image_given_label": "log p(x \\| y)",
    "recon_mse/image_only/image": "MSE image from image",
    "recon_mse/label_only/image": "MSE image from label",
    "recon_mse_class_mean/label_only/image": "MSE image from label, class-mean style",
    "style/mse_own_style/image": "MSE image from label + own style",
}
SETTINGS = ("image_only", "label_only")


def read_runs(sweep: Path) -> dict[str, list[tuple[Path, dict[str, float]]]]:
    runs = defaultdict(list)
    for hydra_path in sorted(sweep.rglob(".hydra/hydra.yaml")):
        run = hydra_path.parent.parent
        if not (run / "metrics.json").exists():
            continue  # unfinished job
        metrics = json.loads((run / "metrics.json").read_text())
        if (run / "eval" / "metrics.json").exists():  # a later `python -m mwvae.eval`
            metrics |= json.loads((run / "eval" / "metrics.json").read_text())
        model = yaml.safe_load(hydra_path.read_text())["hydra"]["runtime"]["choices"]["model"]
        runs[model].append((run, metrics))
    return runs


def ordered(models) -> list[str]:
    """`models` in the catalog's order, the ones it does not know last."""
    return [m for m in ORDER if m in models] + sorted(set(models) - set(ORDER))


def cell(values: list[float]) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values)
    spec = ".3f" if abs(mean) < 10 else ".1f" if abs(mean) < 1e4 else ".2e"
    if len(values) == 1:  # one seed: no spread to report
        return f"{mean:{spec}}"
    return f"{mean:{spec}} +- {statistics.stdev(values):{spec}}"


def table(runs) -> str:
    lines = [
        "| model | seeds | " + " | ".join(COLUMNS.values()) + " |",
        "|---|---|" + "---|" * len(COLUMNS),
    ]
    for model in ordered(runs):
        metrics = [m for _, m in runs[model]]
        cells = [cell([m[f"test/{key}"] for m in metrics if f"test/{key}" in m]) for key in COLUMNS]
        lines.append(f"| `{model}` | {len(metrics)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def copy_panels(runs, figures: Path, relative_to: Path) -> str:
    figures.mkdir(parents=True, exist_ok=True)
    header = "| model | " + " | ".join(s.replace("_", " ") for s in SETTINGS) + " |"
    lines = [header, "|---|" + "---|" * len(SETTINGS)]
    for model in [m for m in ORDER if m in runs]:
        run = min(runs[model], key=lambda item: item[0].name)[0]
        cells = []
        for setting in SETTINGS:
            source = run / "figures" / f"reconstructions_{setting}.png"
            if source.exists():
                target = figures / f"{model}_{setting}.png"
                shutil.copyfile(source, target)
                cells.append(f"![{model} {setting}]({target.relative_to(relative_to)})")
            else:
                cells.append("-")
        lines.append(f"| `{model}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--figures", type=Path, default=Path("experiments/figures/compare"))
    parser.add_argument("--report-dir", type=Path, default=Path("experiments"))
    args = parser.parse_args()
    runs = read_runs(args.sweep)
    if not runs:
        raise SystemExit(f"no metrics.json below {args.sweep}")
    print("## Test metrics, mean +- std over seeds\n")
    print(table(runs))
    print("\n## Reconstructions from one modality (seed 0)\n")
    print(copy_panels(runs, args.figures, args.report_dir))


if __name__ == "__main__":
    main()
