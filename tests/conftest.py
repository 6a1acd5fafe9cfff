"""Shared fixtures. The offline MNIST archive is fetched by `make install`
(which `make test` runs first); tests that need it read it from data/mnist."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MNIST_DIR = ROOT / "data" / "mnist"

# Under pytest-xdist (one worker per core) every torch process of the suite
# (worker, CLI runs, their children) computes on one thread: more would only
# contend for the cores the other workers use.
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    if not (MNIST_DIR / "mnist.pkl.gz").exists():
        pytest.fail("the offline MNIST archive is missing: run `make data` (or `make install`)")
    return MNIST_DIR


@pytest.fixture(scope="module")
def coco_data_dir(tmp_path_factory) -> Path:
    """Shared by a module's COCO tests, so the tiny demo is generated and embedded once."""
    return tmp_path_factory.mktemp("coco_data")
