"""Our `mvae_poe` against MultiVae 1.0.3's MVAE (its default objective):
the same networks, initialisation, binarised MNIST, batch 128 and threads,
one epoch each, side by side (`experiments/multivae_side_by_side.py`: our
Trainer's fit against MultiVae's BaseTrainer's, each with its validation).

MultiVae is never a dependency: it lives in the throwaway `.peer-env/`,
which this section makes when it is missing (`make peer-env`). The section is
skipped, saying why, when MultiVae cannot be installed (no package index) and,
in tiny runs, whenever `.peer-env/` is not ready: a check never installs.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

import torch

from experiments.bench.common import ROOT, TINY_SUBSET, table

TARGET = 2.0  # MultiVae's fit seconds over ours
PEER_ENV = ROOT / ".peer-env"
SEEDS, EPOCHS = "0,1", 1  # ours, MultiVae, ours, MultiVae: drift hits both


def peer_python() -> Path | None:
    """The throwaway environment's interpreter, if MultiVae imports there."""
    python = PEER_ENV / "bin" / "python"
    if not python.exists():
        return None
    found = subprocess.run([python, "-c", "import multivae"], capture_output=True)
    return python if found.returncode == 0 else None


def install() -> str:
    """`make peer-env`; what it said when it failed (empty when it did not)."""
    done = subprocess.run(["make", "-s", "peer-env"], cwd=ROOT, capture_output=True, text=True)
    return "" if done.returncode == 0 else (done.stderr or done.stdout).strip()[-500:]


def side_by_side(python: Path, tiny: bool) -> list[dict]:
    with tempfile.TemporaryDirectory() as scratch:
        record = Path(scratch) / "record.json"
        command = [
            str(python),
            "experiments/multivae_side_by_side.py",
            *("--seeds", "0" if tiny else SEEDS, "--epochs", str(EPOCHS)),
            *("--threads", str(torch.get_num_threads()), "--out", str(record)),
            *(("--subset", TINY_SUBSET) if tiny else ()),
        ]
        env = {**os.environ, "PYTHONPATH": "src:experiments"}
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
        return json.loads(record.read_text())["seeds"]


def run(tiny: bool = False) -> dict:
    python = peer_python()
    reason = "tiny runs never install it"
    if python is None and not tiny:
        reason = install() or "installed, but `import multivae` fails there"
        python = peer_python()
    if python is None:
        return {"skipped": f"MultiVae is not importable in {PEER_ENV.name}/ ({reason})"}
    seeds = side_by_side(python, tiny)
    ours = [s["mwvae"]["fit_seconds"] for s in seeds]
    peer = [s["multivae"]["fit_seconds"] for s in seeds]
    return {
        "target": TARGET,
        "epochs": EPOCHS,
        "threads": torch.get_num_threads(),
        "subset": TINY_SUBSET if tiny else None,
        "mwvae_fit_seconds": ours,
        "multivae_fit_seconds": peer,
        "ratio": statistics.median(peer) / statistics.median(ours),
    }


def to_markdown(results: dict) -> str:
    title = "## Against MultiVae: its MVAE and our `mvae_poe`, one epoch"
    if "skipped" in results:
        return f"{title}\n\nSkipped: {results['skipped']}.\n"
    ratio = f"{results['ratio']:.2f}x" + (
        "" if results["ratio"] >= results["target"] else " (missed)"
    )
    cells = [
        "mvae_poe / MVAE",
        f"{statistics.median(results['mwvae_fit_seconds']):.1f}",
        f"{statistics.median(results['multivae_fit_seconds']):.1f}",
        ratio,
    ]
    header = "model | mwvae fit s | MultiVae fit s | MultiVae / mwvae"
    runs = len(results["mwvae_fit_seconds"])
    return (
        "\n".join(
            [
                title,
                "",
                f"MultiVae 1.0.3's MVAE (default objective, its BaseTrainer) against our "
                f"`mvae_poe` (the Trainer of `make train`): the same networks, initialisation and "
                f"MNIST binarised at 0.5, batch 128, {results['threads']} threads, "
                f"{results['epochs']} epoch with each one's validation "
                "(`experiments/multivae_side_by_side.py`, MultiVae in the throwaway `.peer-env/`); "
                f"median of {runs} alternating pairs. Target: >= {results['target']:.0f}x.",
                "",
                *table(header, [cells]),
            ]
        )
        + "\n"
    )
