"""Tabulate the records of `experiments/likelihood_check.py --json`.

    python experiments/likelihood_table.py RECORD          # one checkpoint, every estimate
    python experiments/likelihood_table.py RECORD RECORD ...   # one row per model: the gaps

One record: per subset, the estimator (mean +- standard error over
examples), the reference, their difference (and its largest absolute value),
the estimate before issue 15 (the subset's own posterior), and AIS beside
the reference on AIS's examples. Several: per model, the estimator minus the
reference and the new estimate minus the old, for every subset. Nats.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from records import ordered

SUBSETS = {"joint": "log p(x, y)", "image": "log p(x)", "label": "log p(y)"}  # MNIST's


def model_name(path: Path, record: dict) -> str:
    """The Hydra choice in the checkpoint's run folder name, else the file's name."""
    found = re.search(r"model=([^,/]+)", record["checkpoint"])
    return found[1] if found else path.stem


def number(value: float, signed: bool = False, small: bool = False) -> str:
    return f"{value:{'+' if signed else ''}.{3 if small else 2}f}"


def detailed(record: dict) -> str:
    k, ref_k, ais = record["k"], record["reference_k"], record["ais"]["examples"]
    lines = [
        f"| | estimator, K = {k:,} | reference, K = {ref_k:,} | estimator - reference "
        f"(max \\| . \\|) | before: own posterior, K = {k:,} | AIS, first {ais} | "
        f"reference, first {ais} |",
        "|---|---|---|---|---|---|---|",
    ]
    for subset in sorted(record["subsets"], key=list(SUBSETS).index):
        row, small = record["subsets"][subset], subset == "label"
        gap = row["estimator_minus_reference"]
        cells = [
            f"{number(row['estimator']['mean'], small=small)} +- "
            f"{number(row['estimator']['se'], small=small)}",
            number(row["reference"]["mean"], small=small),
            f"{number(gap['mean'], signed=True)} +- {number(gap['se'])} ({row['max_abs_gap']:.1f})",
            number(row["posterior_only"]["mean"], small=small),
            number(row["ais"]["mean"], small=small),
            number(row["reference_on_ais_examples"]["mean"], small=small),
        ]
        lines.append(f"| {SUBSETS[subset]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def gaps(records: dict[str, dict]) -> str:
    subsets = [s for s in SUBSETS if all(s in r["subsets"] for r in records.values())]
    lines = [
        "| model | " + " | ".join(f"{SUBSETS[s]}: gap | old shortfall" for s in subsets) + " |",
        "|---|" + "---|---|" * len(subsets),
    ]
    for name in ordered(records):
        cells = []
        for subset in subsets:
            row, small = records[name]["subsets"][subset], subset == "label"
            shortfall = row["estimator"]["mean"] - row["posterior_only"]["mean"]
            cells.append(number(row["estimator_minus_reference"]["mean"], True, small))
            cells.append(number(shortfall, small=small))
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("records", type=Path, nargs="+")
    args = parser.parse_args(argv)
    records = {model_name(p, r): r for p in args.records if (r := json.loads(p.read_text()))}
    if len(args.records) == 1:
        print(detailed(next(iter(records.values()))))
    else:
        print(gaps(records))


if __name__ == "__main__":
    main()
