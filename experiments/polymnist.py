"""Tabulate PolyMNIST runs beside the published numbers, and plot coherence
against the number of observed modalities (MoPoE's Fig. 3 and MVTCAE's).

    python experiments/polymnist.py SOURCE [SOURCE ...] [--figure PATH] [--report-dir DIR]

SOURCEs are folders of run records (`experiments/record.py <sweep> --out
<folder>`) or sweep folders. Prints a Markdown table of mean +- std over
seeds, one row per model and training budget; `--figure` writes the plot and
links it from `--report-dir` (default: beside the plot); nothing is written
unless asked. Published values are the papers' on the official PolyMNIST,
after hundreds of epochs: see `PUBLISHED`.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from records import budget_text, cell, group, link, plot_over_seeds, read_records, save_figure

OBSERVED = range(1, 5)  # observed modalities k of PolyMNIST's five
COLUMNS = {
    **{f"coherence/observed_{k}": f"coherence, k={k}" for k in OBSERVED},
    "coherence/joint": "unconditional coherence",
    "fd_classifier/mean": "FD (classifier features), unconditional",
    "fd_classifier/leave_one_out_mean": "FD, leave-one-out",
    "loglik/joint": "log p(X) (nats)",
    "time/seconds_per_epoch": "s / epoch",
}
# Conditional coherence against k as the papers report it on the official PolyMNIST
# (MoPoE: Sutter et al. 2021, Fig. 3; MVTCAE: Hwang et al. 2021), as tabulated in
# MultiVae's reproducibility statement (README of AgatheSenellart/MultiVae), with
# MultiVae's own reproduction; MMVAE+ (Palumbo et al. 2023) reports one average
# conditional coherence, 86.9%, and an Inception FID of 92.81 (not comparable with
# our classifier-feature distance).
PUBLISHED = {
    "MoPoE (paper)": [0.66, 0.77, 0.81, 0.83],
    "MoPoE (MultiVae)": [0.67, 0.79, 0.84, 0.85],
    "MVTCAE (paper)": [0.69, 0.77, 0.83, 0.86],
    "MVTCAE (MultiVae)": [0.64, 0.82, 0.88, 0.91],
}
PUBLISHED_MMVAE_PLUS = 0.869


def read_runs(sources: list[Path]) -> dict[tuple[str, tuple], list[dict]]:
    """Records by model (the Hydra choice) and training budget, so that no
    cell averages runs of different lengths; with the means of `derived`."""
    records = read_records(sources)
    for r in records:
        r["metrics"] |= derived(r["metrics"])
    return group(records)


def derived(metrics: dict[str, float]) -> dict[str, float]:
    """The per-modality Frechet distances averaged over the modalities:
    unconditional (`fd_classifier/<m>`) and from all the others (`<R>_to_<m>`
    with R of four modalities)."""
    unconditional = [
        v for k, v in metrics.items() if k.startswith("test/fd_classifier/") and "_to_" not in k
    ]
    leave_one_out = [
        v
        for k, v in metrics.items()
        if k.startswith("test/fd_classifier/") and k.split("/")[-1].split("_to_")[0].count("+") == 3
    ]
    means = {}
    if unconditional:
        means["test/fd_classifier/mean"] = statistics.fmean(unconditional)
    if leave_one_out:
        means["test/fd_classifier/leave_one_out_mean"] = statistics.fmean(leave_one_out)
    return means


def value(metrics: dict[str, float], key: str) -> float | None:
    return metrics.get(f"test/{key}", metrics.get(key))


def table(runs: dict[tuple[str, str], list[dict]]) -> str:
    lines = [
        "| model | seeds | epochs x batches | " + " | ".join(COLUMNS.values()) + " |",
        "|---|---|---|" + "---|" * len(COLUMNS),
    ]
    for (name, trained), records in runs.items():
        cells = [
            cell([v for r in records if (v := value(r["metrics"], key)) is not None])
            for key in COLUMNS
        ]
        lines.append(
            f"| `{name}` | {len(records)} | {budget_text(trained)} | " + " | ".join(cells) + " |"
        )
    for name, values in PUBLISHED.items():
        cells = [f"{v:.2f}" for v in values] + ["-"] * (len(COLUMNS) - len(values))
        lines.append(f"| {name}, official PolyMNIST | - | hundreds | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(runs: dict[tuple[str, str], list[dict]], path: Path) -> Path:
    """Conditional coherence against k: mean over seeds with their range, one
    line per model and budget; the published curves dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.8))
    ks = list(OBSERVED)
    for index, ((name, trained), records) in enumerate(runs.items()):
        per_seed = [[value(r["metrics"], f"coherence/observed_{k}") for k in ks] for r in records]
        per_seed = [row for row in per_seed if None not in row]
        if not per_seed:
            continue
        columns = list(zip(*per_seed, strict=True))
        colour = plt.get_cmap("tab20")(index % 20)
        seeds = f"{len(per_seed)} seed{'s' * (len(per_seed) > 1)}"
        plot_over_seeds(ax, ks, columns, colour, "o-", f"{name}, {budget_text(trained)} ({seeds})")
    for name, values in PUBLISHED.items():
        style = "k--" if "paper" in name else "k:"
        marker = "s" if name.startswith("MoPoE") else "^"
        ax.plot(ks, values, style, marker=marker, alpha=0.6, label=f"{name}, official data")
    ax.axhline(0.1, color="grey", linewidth=0.8)
    ax.text(ks[0], 0.07, "chance (0.1)", ha="left", color="grey", fontsize=9)
    ax.set_xticks(ks)
    ax.set_xlabel("observed modalities k (of 5)")
    ax.set_ylabel("conditional coherence (share of test tuples)")
    ax.set_ylim(0, 1)
    ax.set_title("PolyMNIST: coherence of the missing modalities against k")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1))  # off the curves
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", type=Path, nargs="+")
    parser.add_argument("--figure", type=Path, help="write the coherence-against-k plot here")
    parser.add_argument("--report-dir", type=Path, help="link the plot from here")
    args = parser.parse_args(argv)
    runs = read_runs(args.sources)
    if not runs:
        raise SystemExit(f"no records in {[str(p) for p in args.sources]}")
    print(table(runs))
    print(
        f"\nMMVAE+ (paper, official PolyMNIST): average conditional coherence "
        f"{PUBLISHED_MMVAE_PLUS:.3f}."
    )
    if args.figure:
        print(f"\n![Coherence against k]({link(plot(runs, args.figure), args.report_dir)})")


if __name__ == "__main__":
    main()
