"""The experiment scripts live in experiments/ and experiments/bench/ (scripts,
not packages): their tests import them as `make` runs them, from their folder."""

from __future__ import annotations

import sys
from pathlib import Path

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
for folder in (EXPERIMENTS, EXPERIMENTS / "bench"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
