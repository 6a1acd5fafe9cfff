"""The experiment scripts in experiments/ (compare.py, weak_supervision.py) run as
files, from their folder: their tests import them the same way. The bench is a
package (`experiments.bench`)."""

from __future__ import annotations

import sys
from pathlib import Path

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
if str(EXPERIMENTS) not in sys.path:
    sys.path.insert(0, str(EXPERIMENTS))
