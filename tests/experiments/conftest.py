"""The benchmark scripts live in experiments/bench/ (scripts, not a package):
their tests import them as `make bench` runs them, from that folder."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "experiments" / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
