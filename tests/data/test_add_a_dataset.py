"""The README's "Adding a dataset", as written there: its toy DataModule (one
Python file) and its config (one YAML) in a folder of their own, trained
through the command line."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.test_train import ROOT, run_cli


def readme_example() -> tuple[str, str]:
    """The Python file and the YAML of the README's section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Adding a dataset\n", 1)[1].split("\n## ", 1)[0]
    (python,) = re.findall(r"```python\n(.*?)```", section, re.S)
    (yaml,) = re.findall(r"```yaml\n(.*?)```", section, re.S)
    return python, yaml


@pytest.fixture
def toy(tmp_path) -> Path:
    python, yaml = readme_example()
    (tmp_path / "toy.py").write_text(python)
    (tmp_path / "conf" / "data").mkdir(parents=True)
    (tmp_path / "conf" / "data" / "toy.yaml").write_text(yaml)
    return tmp_path


def train_toy(folder: Path, *overrides: str) -> subprocess.CompletedProcess:
    """`python -m mwvae.train data=toy` with the folder's conf/ and toy.py."""
    return run_cli(
        "data=toy",
        f"hydra.searchpath=[file://{folder}/conf]",
        "debug=fast",  # one training, validation and test batch; no evaluation, no figures
        *overrides,
        run_dir=folder / "run",
        env={"PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])},
    )


def test_the_readmes_toy_dataset_trains_through_the_command_line(toy):
    run = train_toy(toy, "data.num_train=300", "data.paired_fraction=0.5")
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((toy / "run" / "metrics.json").read_text())
    assert "test/loss" in metrics


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.num_trian=5", "num_trian"),
        ("data.num_train=0", "data.num_train: must be >= 1, got 0"),
        ("data.unpaired_keep=image", "data.unpaired_keep"),
    ],
)
def test_a_bad_toy_option_fails_naming_its_key(toy, override, message):
    run = train_toy(toy, override)
    assert run.returncode != 0 and message in run.stderr, run.stderr[-3000:]
    assert not (toy / "run" / "metrics.json").exists()
