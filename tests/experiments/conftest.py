"""The experiment scripts in experiments/ (compare.py, records.py, ...) run as
files, from their folder: their tests import them the same way. The bench is a
package (`experiments.bench`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
if str(EXPERIMENTS) not in sys.path:
    sys.path.insert(0, str(EXPERIMENTS))


def write_run(
    folder: Path, model: str, metrics: dict, config: dict | None = None, data: str = "mnist"
) -> Path:
    """A finished run folder as `mwvae.train` leaves it (the parts the
    report scripts read)."""
    config = {"trainer": {"max_epochs": 5, "limit_train_batches": None}} | (config or {})
    (folder / ".hydra").mkdir(parents=True)
    choices = {"model": model, "data": data}
    hydra = {"runtime": {"choices": choices}, "overrides": {"task": [f"model={model}"]}}
    (folder / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": hydra}))
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


@pytest.fixture
def make_run():
    return write_run
