"""Keep the small record of every finished run below a sweep folder.

    python experiments/record.py outputs/compare/<sweep> --out experiments/results/<name> [--note TEXT]

One JSON file per run (`records.record`: metrics, resolved config, Hydra
choices and overrides, machine, the commit of this checkout and the date),
so that a table made from the records says what stands behind each number
and a comparison can grow over several sessions. Checkpoints stay out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from records import commit, record, run_folders  # experiments/ is the script's folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--note")
    args = parser.parse_args()
    runs = run_folders(args.sweep)
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
