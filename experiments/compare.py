"""Tabulate the MNIST comparison (`make compare`) from its runs or their records.

    python experiments/compare.py SOURCE [SOURCE ...] [--report-dir DIR] [--figures DIR]
                                  [--columns KEY,...] [--bare] [--curves PATH]

SOURCEs are sweep folders or folders of run records (`experiments/record.py`).
Prints a Markdown table of mean +- std over seeds, one row per model and
training budget (never averaged across budgets), and, for the runs of a
sweep, a table of their reconstruction figures (seed 0: every observation
setting side by side), linked from where the report will be (`--report-dir`,
default: the first source) or copied into `--figures` first; `--curves`
plots the validation metrics against epochs (mean over seeds, their range),
which shows whether a budget has converged. Nothing is written unless asked. The reading of the
paper's claims is written by a person, below the table.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from mwvae.data.coco_demo_reading import ATTRIBUTES
from mwvae.evaluation.caption_scores import SCORES
from records import budget_text, cell, group, link, plot_over_seeds, read_records, save_figure

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
# The COCO demo with captions as tokens (`make coco-demo-tokens`): what written captions say.
CAPTION_COLUMNS = {
    **{
        f"caption_attributes/{source}/{a}": f"{a}, {label}"
        for source, label in (("image_to_caption", "from the image"), ("chance", "chance"))
        for a in ATTRIBUTES
    },
    "caption_attributes/joint_to_caption/all": "all, from image and caption",
    "caption_attributes/caption_to_caption/all": "all, caption rewritten",
    **{
        f"caption_text/{source}/{score}": f"{name}, {label}"
        for source, label in (("image_to_caption", "from the image"), ("chance", "chance"))
        for score, name in zip(SCORES, ("BLEU-4", "CIDEr-D"), strict=True)
    },
    "coherence/caption_to_image": "caption -> image",
    "coherence/joint": COLUMNS["coherence/joint"],
    "retrieval/posterior/caption_to_image/r@10": "caption -> image r@10",
    "retrieval/posterior_fused/caption_to_image/r@10": "fused captions -> image r@10",
    "loglik/caption": "log p(caption)",
}
KNOWN = COLUMNS | CAPTION_COLUMNS


def table(groups: dict, columns: dict = COLUMNS) -> str:
    lines = [
        "| model | seeds | epochs x batches | " + " | ".join(columns.values()) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    for (name, trained), records in groups.items():
        metrics = [r["metrics"] for r in records]
        cells = [cell([m[f"test/{key}"] for m in metrics if f"test/{key}" in m]) for key in columns]
        lines.append(
            f"| `{name}` | {len(metrics)} | {budget_text(trained)} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def panels(groups: dict, report_dir: Path, figures: Path | None) -> str:
    """The reconstruction figure of each model's first run (by folder name),
    for the runs read from a sweep; copied into `figures` when given."""
    lines = ["| model | epochs x batches | reconstructions |", "|---|---|---|"]
    for (name, trained), records in groups.items():
        folders = sorted(Path(r["folder"]) for r in records if "folder" in r)
        if not folders:
            continue
        path = folders[0] / "figures" / "reconstructions.png"
        if not path.exists():
            cell = "-"
        else:
            if figures is not None:
                figures.mkdir(parents=True, exist_ok=True)
                path = Path(shutil.copyfile(path, figures / f"{name}_reconstructions.png"))
            cell = f"![{name} reconstructions]({link(path, report_dir)})"
        lines.append(f"| `{name}` | {budget_text(trained)} | {cell} |")
    return "\n".join(lines) if len(lines) > 2 else ""


# What `--curves` plots: comparable across models (the losses are not: each has its own objective).
CURVES = {  # key: (title, y scale)
    "val/coherence/image_to_label": ("image -> label (validation)", "linear"),
    "val/w2": ("W2^2 (validation)", "log"),
}


def curve(records: list[dict], key: str) -> tuple[list[int], list[list[float]]] | None:
    """The epochs and, at each, the values over seeds of the validation
    metric `key`, from the records' validation histories (None when none
    has it, or they differ in their epochs; records older than 2026-12-06
    have no history)."""
    histories = [r["validation_history"] for r in records if r.get("validation_history")]
    histories = [h for h in histories if key in h and None not in h[key]]
    if not histories or len({tuple(h["epoch"]) for h in histories}) > 1:
        return None
    return histories[0]["epoch"], [list(c) for c in zip(*(h[key] for h in histories), strict=True)]


def curves(groups: dict, path: Path) -> Path:
    """Each validation metric of CURVES against epochs: the mean over a
    group's seeds and their range, one line per model and budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CURVES), figsize=(6 * len(CURVES), 4.6))
    for index, ((name, trained), records) in enumerate(groups.items()):
        colour = plt.get_cmap("tab10")(index % 10)  # distinct colours, then dashed lines
        style = "-" if index < 10 else "--"
        for ax, key in zip(axes, CURVES, strict=True):
            found = curve(records, key)
            if found is None:
                continue
            epochs, values = found
            label = f"{name}, {budget_text(trained)} ({len(values[0])})"
            plot_over_seeds(ax, epochs, values, colour, style, label)
    for ax, (title, scale) in zip(axes, CURVES.values(), strict=True):
        ax.set_xlabel("epochs trained")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.set_yscale(scale)
    axes[0].set_ylim(0, 1)
    lines = {
        label: line
        for ax in axes
        for line, label in zip(*ax.get_legend_handles_labels(), strict=True)
    }
    if lines:  # one legend for both panels: a model may miss a metric
        axes[-1].legend(lines.values(), lines.keys(), fontsize=7.5, loc="upper left",
                        bbox_to_anchor=(1.01, 1))  # fmt: skip
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("sources", type=Path, nargs="+")
    parser.add_argument(
        "--report-dir", type=Path, help="where the report goes (links); default: the first source"
    )
    parser.add_argument("--figures", type=Path, help="copy the reconstruction figures here")
    parser.add_argument(
        "--columns",
        type=lambda text: text.split(","),
        default=list(COLUMNS),
        help=f"the metrics to show, comma-separated, of: {','.join(KNOWN)}; "
        "`captions`: the COCO demo's token-caption columns",
    )
    parser.add_argument("--bare", action="store_true", help="the metrics table alone")
    parser.add_argument("--curves", type=Path, help="plot the validation metrics against epochs")
    args = parser.parse_args(argv)
    if args.columns == ["captions"]:
        args.columns = list(CAPTION_COLUMNS)
    unknown = set(args.columns) - set(KNOWN)
    if unknown:
        parser.error(f"unknown --columns {sorted(unknown)}; choose from {','.join(KNOWN)}")
    groups = group(read_records(args.sources))
    if not groups:
        raise SystemExit(f"no finished run or record in {[str(p) for p in args.sources]}")
    metrics_table = table(groups, {key: KNOWN[key] for key in args.columns})
    drawn = curves(groups, args.curves) if args.curves else None
    if args.bare:
        print(metrics_table)
        return
    print("## Test metrics, mean +- std over seeds\n")
    print(metrics_table)
    report_dir = args.report_dir or args.sources[0]
    if drawn:
        print(f"\n![Validation metrics against epochs]({link(drawn, report_dir)})")
    grids = panels(groups, report_dir, args.figures)
    if grids:
        print("\n## Reconstructions from each observation setting (seed 0)\n")
        print(grids)


if __name__ == "__main__":
    main()
