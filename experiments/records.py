"""Run records, the data every table of experiments/ is made from, and what
the report scripts share (cells, links, saving a figure).

A record is one finished run's small summary: its metrics (`metrics.json`,
updated by `eval/metrics.json` when it was evaluated again), its validation
metrics at each epoch end (from `history.csv`), resolved config, Hydra
choices and overrides, the machine it ran on, the commit and date it was
recorded at. `experiments/record.py` keeps them under
`experiments/results/<name>/`; the report scripts read either such folders or
sweep folders, whose finished runs they record on the fly.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
import statistics
import subprocess
from collections.abc import Iterable
from pathlib import Path

import yaml

from mwvae.config.catalog import model_names

ORDER = model_names()  # rows in the catalog's order; models it does not know come last


def commit() -> str:
    found = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return found + ("+uncommitted changes" if dirty else "")


def record(run: Path, commit: str | None, note: str | None = None) -> dict:
    """The record of one finished run folder."""
    metrics = json.loads((run / "metrics.json").read_text())
    evaluated = run / "eval" / "metrics.json"
    if evaluated.exists():
        metrics |= json.loads(evaluated.read_text())
    hydra = yaml.safe_load((run / ".hydra" / "hydra.yaml").read_text())["hydra"]
    machine = run / "machine.json"  # written by runs since 2026-12-02
    return {
        "run": run.name,
        "choices": hydra["runtime"]["choices"],
        "overrides": hydra["overrides"]["task"],
        "metrics": metrics,
        "evaluated_again": evaluated.exists(),
        "validation_history": validation_history(run),
        "config": yaml.safe_load((run / "config.yaml").read_text()),
        "machine": json.loads(machine.read_text()) if machine.exists() else None,
        "commit": commit,
        "recorded": datetime.date.today().isoformat(),
        **({"note": note} if note else {}),
    }


def validation_history(run: Path) -> dict[str, list[float | None]] | None:
    """Each `val/*` metric at each epoch end, from the run's `history.csv`
    (None without one): how the run got to where its metrics are. A resumed
    run may log an epoch twice; its last row counts."""
    path = run / "history.csv"
    if not path.exists():
        return None
    with path.open(newline="") as file:
        rows = {row["epoch"]: row for row in csv.DictReader(file) if row.get("val/loss")}
    keys = [key for key in next(iter(rows.values()), {}) if key.startswith("val/")]
    return {"epoch": [int(e) + 1 for e in rows]} | {
        key: [float(row[key]) if row[key] else None for row in rows.values()] for key in keys
    }


def run_folders(sweep: Path) -> list[Path]:
    """Every run below a sweep folder, finished (with a metrics.json) or not."""
    return sorted(p.parent.parent for p in Path(sweep).rglob(".hydra/hydra.yaml"))


def read_records(sources: Iterable[Path]) -> list[dict]:
    """The records in `sources`: folders of records (`*.json`) or sweep
    folders, whose finished runs are recorded here, with their folder under
    `folder` (for the figures that a record does not keep)."""
    records = []
    for source in map(Path, sources):
        if not source.is_dir():
            raise SystemExit(f"{source} is not a folder of records or runs")
        runs = run_folders(source)
        if runs:
            records += [
                record(run, commit=None) | {"folder": str(run)}
                for run in runs
                if (run / "metrics.json").exists()
            ]
        else:
            records += [json.loads(p.read_text()) for p in sorted(source.glob("*.json"))]
    return records


def model(record: dict) -> str:
    return record["choices"]["model"]


def budget(record: dict) -> tuple[int, float]:
    """(epochs, training batches per epoch; inf: the whole split) of a run:
    no table cell averages runs of different lengths."""
    trainer = record["config"]["trainer"]
    batches = trainer.get("limit_train_batches")
    return trainer["max_epochs"], math.inf if batches is None else batches


def budget_text(trained: tuple[int, float]) -> str:
    epochs, batches = trained
    return f"{epochs} x {'all' if batches == math.inf else batches}"


def model_and_budget(record: dict) -> tuple[str, tuple[int, float]]:
    return model(record), budget(record)


def group(records: list[dict], key=model_and_budget) -> dict:
    """Records by `key(record)` (a tuple whose first item is the model; by
    default with the budget), keys sorted by model (the catalog's order),
    then by the rest of the key."""
    groups: dict = {}
    for r in records:
        groups.setdefault(key(r), []).append(r)
    rank = {m: i for i, m in enumerate(ordered({k[0] for k in groups}))}
    return dict(sorted(groups.items(), key=lambda item: (rank[item[0][0]], item[0][1:])))


def ordered(models) -> list[str]:
    """`models` in the catalog's order, the ones it does not know last."""
    return [m for m in ORDER if m in models] + sorted(set(models) - set(ORDER))


def cell(values: list[float]) -> str:
    """mean +- std over seeds (one seed: the value; none: a dash)."""
    if not values:
        return "-"
    mean = statistics.fmean(values)
    spec = ".3f" if abs(mean) < 10 else ".1f" if abs(mean) < 1e4 else ".2e"
    if len(values) == 1:  # one seed: no spread to report
        return f"{mean:{spec}}"
    return f"{mean:{spec}} +- {statistics.stdev(values):{spec}}"


def link(path: Path, report_dir: Path | None) -> str:
    """`path` as a Markdown report in `report_dir` links it (None: a report
    beside it)."""
    if report_dir is None:
        return path.name
    return os.path.relpath(path.resolve(), Path(report_dir).resolve())


def plot_over_seeds(ax, x, columns, colour, style="-", label=None) -> None:
    """The mean over seeds at each x (`columns[i]`: the seeds' values at x[i])
    as a line, and their range as a band."""
    ax.plot(x, [statistics.fmean(c) for c in columns], style, color=colour, label=label)
    ax.fill_between(x, [min(c) for c in columns], [max(c) for c in columns], color=colour,
                    alpha=0.15)  # fmt: skip


def save_figure(figure, path: Path, dpi: int = 130) -> Path:
    """Write a matplotlib figure (laid out) to `path`, and close it."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path
