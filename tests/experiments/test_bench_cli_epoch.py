"""The bench's CLI-epoch section on a tiny subset: the plain loop trains and
validates over the datamodule's batches, the CLI is asked for what a user
runs, and the report states the ratio against its target. No speed is checked."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from experiments.bench import cli_epoch

TINY = cli_epoch.TINY_OVERRIDES


def test_the_plain_loop_times_training_and_validation_per_epoch(tmp_path):
    seconds = cli_epoch.plain_epochs(TINY, 2, str(tmp_path))
    assert seconds["training_seconds_per_epoch"] > 0 and seconds["validation_seconds_per_epoch"] > 0
    assert seconds["seconds_per_epoch"] == pytest.approx(
        seconds["training_seconds_per_epoch"] + seconds["validation_seconds_per_epoch"]
    )


def test_the_cli_is_run_as_a_user_runs_it_and_its_timer_read(monkeypatch, tmp_path):
    commands = []

    def fake_run(command, **kwargs):
        commands.append(command)
        (tmp_path / "metrics.json").write_text(json.dumps({"time/seconds_per_epoch": 1.5}))
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(cli_epoch.subprocess, "run", fake_run)
    assert cli_epoch.cli_seconds_per_epoch(TINY, 3, tmp_path) == 1.5
    (command,) = commands
    assert command[:3] == [sys.executable, "-m", "mwvae.train"]
    assert {"model=mw_vae", "trainer.max_epochs=3", f"hydra.run.dir={tmp_path}", *TINY} <= set(
        command
    )
    assert "evaluate=false" in command and "figures=false" in command


def test_a_failing_cli_run_says_what_it_printed(monkeypatch, tmp_path):
    monkeypatch.setattr(
        cli_epoch.subprocess,
        "run",
        lambda command, **kwargs: subprocess.CompletedProcess(command, 1, "", "error: bad data"),
    )
    with pytest.raises(RuntimeError, match="bad data"):
        cli_epoch.cli_seconds_per_epoch(TINY, 1, tmp_path)


def test_the_report_gives_the_ratio_and_names_a_miss():
    plain = {
        "seconds_per_epoch": 9.0,
        "training_seconds_per_epoch": 8.0,
        "validation_seconds_per_epoch": 1.0,
    }
    results = {"target": 0.9, "model": "mw_vae", "epochs": 2, "threads": 2, "plain": [plain]}
    results |= {"cli_seconds_per_epoch": [10.5], "ratio": 9.0 / 10.5}
    markdown = cli_epoch.to_markdown(results)
    assert "| mw_vae | 8.00 | 1.00 | 9.00 | 10.50 | 0.857 (missed) |" in markdown
    results |= {"cli_seconds_per_epoch": [9.5], "ratio": 9.0 / 9.5}
    assert "0.947 |" in cli_epoch.to_markdown(results)
