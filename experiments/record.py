"""Keep the small record of every finished run below a sweep folder.

    python experiments/record.py outputs/compare/<sweep> --out experiments/results/<name> [--note TEXT]

One JSON file per run: its metrics (`metrics.json`, updated by
`eval/metrics.json` when it was evaluated again), its resolved config, the
Hydra choices (model, data, ...), the commit of this checkout and the date,
so that a table made from the records says what stands behind each number
and a comparison can grow over several sessions. Checkpoints stay out.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
from pathlib import Path

import yaml


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


def record(run: Path, commit: str, note: str | None) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    evaluated = run / "eval" / "metrics.json"
    if evaluated.exists():
        metrics |= json.loads(evaluated.read_text())
    hydra = yaml.safe_load((run / ".hydra" / "hydra.yaml").read_text())["hydra"]
    return {
        "run": run.name,
        "choices": hydra["runtime"]["choices"],
        "overrides": hydra["overrides"]["task"],
        "metrics": metrics,
        "evaluated_again": evaluated.exists(),
        "config": yaml.safe_load((run / "config.yaml").read_text()),
        "commit": commit,
        "recorded": datetime.date.today().isoformat(),
        **({"note": note} if note else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--note")
    args = parser.parse_args()
    runs = sorted(p.parent.parent for p in args.sweep.rglob(".hydra/hydra.yaml"))
    finished = [run for run in runs if (run / "metrics.json").exists()]
    args.out.mkdir(parents=True, exist_ok=True)
    here = commit()  # one checkout for every record
    for run in finished:
        (args.out / f"{run.name}.json").write_text(
            json.dumps(record(run, here, args.note), indent=1) + "\n"
        )
    print(f"{len(finished)} records in {args.out} ({len(runs) - len(finished)} runs unfinished)")


if __name__ == "__main__":
    main()
