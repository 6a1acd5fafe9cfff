"""The benchmark suite (`make bench`): every section in one process, one dated
report (Markdown and JSON, plus the scaling figure) with the machine's
description.

    python experiments/bench/run.py [--only training,roofline] [--tiny] [--out DIR]

Sections: training (Trainer vs a plain loop, every model), roofline (FLOP
rate vs this machine's matrix products), evaluation (batched likelihood vs
per-sample loops; a checkpoint's evaluation in training epochs), captions
(ours vs sentence-transformers; the cache), scaling (step time against batch
size, latent size and the number of modalities). Every figure compared is
measured in this run, side by side; absolute times on a shared machine drift.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from datetime import datetime
from pathlib import Path

import pytorch_lightning as pl
import torch

# The sections are the scripts beside this one (a folder of scripts, not a package).
sys.path.insert(0, str(Path(__file__).resolve().parent))
SECTIONS = {
    name: importlib.import_module(module)
    for name, module in [
        ("training", "training"),
        ("roofline", "roofline"),
        ("evaluation", "evaluation"),
        ("captions", "caption_embedding"),
        ("scaling", "scaling"),
    ]
}
REPORTS = Path(__file__).resolve().parent / "reports"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """What the numbers were measured on."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_name(),
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": pl.__version__,
        "platform": platform.platform(),
    }


def header(date: str, description: dict, seconds: dict[str, float], tiny: bool) -> str:
    gpu = description["gpu"] or "none (the GPU path was not measured in this run)"
    lines = [
        f"# Benchmark report {date}" + (" (tiny: a check, not a measurement)" if tiny else ""),
        "",
        f"Machine: {description['cpu']}, {description['logical_cores']} logical cores, "
        f"{description['torch_threads']} torch threads; GPU: {gpu}. Python "
        f"{description['python']}, torch {description['torch']}, Lightning "
        f"{description['lightning']}; {description['platform']}.",
        "",
        "Produced by `make bench` (`experiments/bench/run.py`) in "
        f"{sum(seconds.values()) / 60:.1f} min: "
        + ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items())
        + ". Ratios compare measurements taken side by side in this run.",
    ]
    return "\n".join(lines) + "\n"


def section_markdown(name: str, results: dict, figure: str) -> str:
    if name == "scaling":
        return SECTIONS[name].to_markdown(results, figure=figure)
    return SECTIONS[name].to_markdown(results)


def run(sections: list[str], tiny: bool, out: Path) -> tuple[Path, Path]:
    """Run the sections, write `<out>/<date>.md` and `.json`; return their paths."""
    date = datetime.now().strftime("%Y-%m-%d")
    out.mkdir(parents=True, exist_ok=True)
    results, seconds = {}, {}
    for name in sections:
        print(f"[bench] {name} ...", flush=True)
        start = time.perf_counter()
        results[name] = SECTIONS[name].run(tiny=tiny)
        seconds[name] = time.perf_counter() - start
        print(f"[bench] {name} done in {seconds[name]:.0f} s", flush=True)
    report = {
        "date": datetime.now().isoformat(timespec="seconds"),
        "tiny": tiny,
        "machine": machine(),
        "seconds": seconds,
        **results,
    }
    json_path = out / f"{date}.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    return render(json_path), json_path


def render(json_path: Path) -> Path:
    """The Markdown report (and scaling figure) of a JSON report, beside it."""
    report = json.loads(json_path.read_text())
    date = json_path.stem
    figure = json_path.with_name(f"{date}_scaling.png")
    sections = [name for name in SECTIONS if name in report]
    if "scaling" in report:
        SECTIONS["scaling"].plot(report["scaling"], figure)
    markdown = header(date, report["machine"], report["seconds"], report["tiny"]) + "".join(
        "\n" + section_markdown(name, report[name], figure.name) for name in sections
    )
    markdown_path = json_path.with_suffix(".md")
    markdown_path.write_text(markdown)
    return markdown_path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument("--tiny", action="store_true", help="a quick check, not a measurement")
    parser.add_argument("--out", type=Path, default=REPORTS, help=f"default: {REPORTS}")
    parser.add_argument(
        "--render", type=Path, default=None, help="only rewrite the Markdown of this JSON report"
    )
    args = parser.parse_args()
    if args.render:
        print(f"Report: {render(args.render)}")
        return
    sections = args.only.split(",")
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {list(SECTIONS)}")
    markdown_path, json_path = run(sections, args.tiny, args.out)
    print(markdown_path.read_text())
    print(f"Report: {markdown_path} and {json_path}")


if __name__ == "__main__":
    main()
