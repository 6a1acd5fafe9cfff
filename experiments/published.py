"""The published MNIST + label likelihood protocol: log p(x, y) against epochs.

    python experiments/published.py evaluate outputs/published/<model> --out RECORD [--examples N]
    python experiments/published.py table RECORD [RECORD ...] [--figure PATH]

`evaluate` scores every milestone checkpoint of a `make exp-published` run
(`checkpoints/milestone-epochNNN.ckpt`) that RECORD (a JSON file) does not
hold yet, with the evaluation's estimator (K = 1000, the defensive mixture)
on the first N test examples, and adds it to RECORD: a run can be scored as
it trains, over several sessions. `table` prints log p(x, y) per model and
epoch beside the published values and, with `--figure`, plots it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
from pathlib import Path

import yaml

from records import commit, ordered, save_figure  # experiments/ is the script's folder

# log p(x, y) in nats on binarised MNIST + label, K = 1000 on the whole test set, to the
# first decimal (MultiVae's reproductions land within 0.05 nats of them).
PUBLISHED = {
    "jmvae": ("JMVAE (Suzuki et al. 2016)", -86.9),
    "mvae_poe": ("MVAE (Wu & Goodman 2018)", -86.3),
}
MILESTONE = re.compile(r"milestone-epoch(\d+)\.ckpt")


def milestones(run: Path) -> dict[int, Path]:
    """Epoch (1-based: epochs trained) -> checkpoint."""
    found = {}
    for path in sorted((run / "checkpoints").glob("milestone-epoch*.ckpt")):
        found[int(MILESTONE.fullmatch(path.name)[1]) + 1] = path
    return found


def score(checkpoint: Path, examples: int, k: int) -> dict[str, float]:
    from mwvae import load_model
    from mwvae.eval import run_datamodule
    from mwvae.evaluation.likelihood import likelihood_metrics

    model = load_model(checkpoint).eval()
    datamodule = run_datamodule(checkpoint)
    datamodule.setup()
    return likelihood_metrics(model, datamodule.splits["test"], k=k, num_samples=examples)


def evaluate(run: Path, out: Path, examples: int, k: int) -> dict:
    record = json.loads(out.read_text()) if out.exists() else {}
    hydra = yaml.safe_load((run / ".hydra" / "hydra.yaml").read_text())["hydra"]
    record.setdefault("model", hydra["runtime"]["choices"]["model"])
    record.setdefault("run", str(run))
    record.setdefault("epochs", {})
    for epoch, checkpoint in milestones(run).items():
        key = str(epoch)
        if key in record["epochs"] and record["epochs"][key]["examples"] >= examples:
            continue
        metrics = score(checkpoint, examples, k)
        record["epochs"][key] = {
            "examples": examples,
            "k": k,
            "joint": metrics["loglik/joint"],
            "joint_se": metrics["loglik_se/joint"],
            "commit": commit(),
            "date": datetime.date.today().isoformat(),
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")  # after each: resumable
        print(f"epoch {epoch}: log p(x, y) = {metrics['loglik/joint']:.2f}")
    return record


def read(paths: list[Path]) -> dict[str, dict]:
    records = {}
    for path in paths:
        record = json.loads(path.read_text())
        records[record["model"]] = record
    return {m: records[m] for m in ordered(records)}


def table(records: dict[str, dict]) -> str:
    epochs = sorted({int(e) for r in records.values() for e in r["epochs"]})
    lines = [
        "| model | " + " | ".join(f"epoch {e}" for e in epochs) + " | published |",
        "|---|" + "---|" * (len(epochs) + 1),
    ]
    for model, record in records.items():
        cells = []
        for epoch in epochs:
            row = record["epochs"].get(str(epoch))
            cells.append(
                f"{row['joint']:.2f} +- {row['joint_se']:.2f} ({row['examples']:,})" if row else "-"
            )
        published = f"{PUBLISHED[model][1]:.1f}" if model in PUBLISHED else "-"
        lines.append(f"| `{model}` | " + " | ".join(cells) + f" | {published} |")
    return "\n".join(lines)


def plot(records: dict[str, dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for index, (model, record) in enumerate(records.items()):
        colour = plt.get_cmap("tab10")(index)
        points = sorted(
            (int(e), row["joint"], row["joint_se"]) for e, row in record["epochs"].items()
        )
        epochs, values, errors = zip(*points, strict=True)
        ax.errorbar(epochs, values, yerr=errors, marker="o", capsize=3, color=colour, label=model)
        if model in PUBLISHED:
            name, value = PUBLISHED[model]
            ax.axhline(value, color=colour, linestyle="--", alpha=0.7, label=f"{name}: {value}")
    ax.set_xlabel("epochs trained")
    ax.set_ylabel("log p(x, y), nats (test; K = 1000)")
    ax.set_title("Binarised MNIST + label on the published protocol")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    scoring = commands.add_parser("evaluate", help="score a run's milestone checkpoints")
    scoring.add_argument("run", type=Path)
    scoring.add_argument("--out", type=Path, required=True)
    scoring.add_argument("--examples", type=int, default=10_000)
    scoring.add_argument("--k", type=int, default=1000)
    tabulating = commands.add_parser("table", help="log p(x, y) against epochs")
    tabulating.add_argument("records", type=Path, nargs="+")
    tabulating.add_argument("--figure", type=Path)
    args = parser.parse_args(argv)
    if args.command == "evaluate":
        evaluate(args.run, args.out, args.examples, args.k)
        return
    records = read(args.records)
    print(table(records))
    if args.figure:
        print(f"\nFigure: {plot(records, args.figure)}")


if __name__ == "__main__":
    main()
