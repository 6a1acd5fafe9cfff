"""The benchmark suite (`make bench`): every section in one process, one dated
report (Markdown, JSON and the scaling figure) with the machine's description.
Every figure compared is measured in this run, side by side: absolute times on
a shared machine drift.

    python -m experiments.bench.run [--only training,roofline] [--models mw_vae,vae]
        [--tiny] [--out DIR] [--render JSON]
"""

from __future__ import annotations

import argparse
import inspect
import json
import time
from datetime import datetime
from pathlib import Path

from experiments.bench import (
    caption_embedding,
    cli_epoch,
    evaluation,
    multivae,
    roofline,
    scaling,
    training,
)
from mwvae.machine import machine
from mwvae.training import freeze_long_lived

SECTIONS = {
    "training": training,
    "cli_epoch": cli_epoch,
    "multivae": multivae,
    "roofline": roofline,
    "evaluation": evaluation,
    "captions": caption_embedding,
    "scaling": scaling,
}
REPORTS = Path(__file__).resolve().parent / "reports"


def header(date: str, m: dict, seconds: dict[str, float], tiny: bool) -> str:
    gpu = m["gpu"] or "none (the GPU path was not measured in this run)"
    lines = [
        f"# Benchmark report {date}" + (" (tiny: a check, not a measurement)" if tiny else ""),
        "",
        f"Machine: {m['cpu']}, {m['logical_cores']} logical cores, {m['torch_threads']} torch "
        f"threads; GPU: {gpu}. Python {m['python']}, torch {m['torch']}, Lightning "
        f"{m['lightning']}; {m['platform']}.",
        "",
        "Produced by `make bench` (`python -m experiments.bench.run`) in "
        f"{sum(seconds.values()) / 60:.1f} min: "
        + ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items())
        + ". Ratios compare measurements taken side by side in this run.",
    ]
    return "\n".join(lines) + "\n"


def run(
    sections: list[str], tiny: bool, out: Path, models: list[str] | None = None
) -> tuple[Path, Path]:
    """Run the sections (`models`: for those that sweep models), write
    `<out>/<date>.md` and `.json`; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    freeze_long_lived()  # as the CLI does once it has imported the stack: its steps are timed
    results, seconds = {}, {}
    for name in sections:
        print(f"[bench] {name} ...", flush=True)
        section = SECTIONS[name].run
        chosen = {"models": models} if "models" in inspect.signature(section).parameters else {}
        start = time.perf_counter()
        results[name] = section(tiny=tiny, **chosen)
        seconds[name] = time.perf_counter() - start
        print(f"[bench] {name} done in {seconds[name]:.0f} s", flush=True)
    now = datetime.now()
    report = {"date": now.isoformat(timespec="seconds"), "tiny": tiny, "machine": machine()}
    json_path = out / f"{now:%Y-%m-%d}.json"
    json_path.write_text(json.dumps({**report, "seconds": seconds, **results}, indent=2) + "\n")
    return render(json_path), json_path


def render(json_path: Path) -> Path:
    """The Markdown report (and scaling figure) of a JSON report, beside it."""
    report = json.loads(json_path.read_text())
    figure = json_path.with_name(f"{json_path.stem}_scaling.png")
    parts = [header(json_path.stem, report["machine"], report["seconds"], report["tiny"])]
    for name, section in SECTIONS.items():
        if name == "scaling" and name in report:
            section.plot(report[name], figure)
            parts.append(section.to_markdown(report[name], figure=figure.name))
        elif name in report:
            parts.append(section.to_markdown(report[name]))
    markdown_path = json_path.with_suffix(".md")
    markdown_path.write_text("\n".join(parts))
    return markdown_path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument("--models", default=None, help="comma-separated; default: the catalog")
    parser.add_argument("--tiny", action="store_true", help="a quick check, not a measurement")
    parser.add_argument("--out", type=Path, default=REPORTS, help=f"default: {REPORTS}")
    parser.add_argument("--render", type=Path, help="only rewrite the Markdown of this JSON report")
    args = parser.parse_args()
    if args.render:
        print(f"Report: {render(args.render)}")
        return
    sections = args.only.split(",")
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {list(SECTIONS)}")
    models = args.models.split(",") if args.models else None
    markdown_path, json_path = run(sections, args.tiny, args.out, models)
    print(markdown_path.read_text())
    print(f"Report: {markdown_path} and {json_path}")


if __name__ == "__main__":
    main()
