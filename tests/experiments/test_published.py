"""The published-protocol report scores a run's milestone checkpoints once
each, adds them to its record as they come, and tabulates them beside the
published values."""

from __future__ import annotations

import json

import pytest

from published import PUBLISHED, main, milestones
from tests.test_train import SUBSET, run_cli


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("published") / "jmvae"
    done = run_cli(
        "experiment=mnist_published",
        "model=jmvae",
        SUBSET,
        "trainer.max_epochs=2",
        "model.kl_warmup_epochs=1",
        "callbacks.milestones.every_n_epochs=1",
        "evaluate=false",
        "figures=false",
        run_dir=run_dir,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


def test_milestones_are_scored_once_and_tabulated(run, tmp_path, capsys):
    assert sorted(milestones(run)) == [1, 2]  # epochs trained
    out = tmp_path / "jmvae.json"
    main(["evaluate", str(run), "--out", str(out), "--examples", "30", "--k", "20"])
    record = json.loads(out.read_text())
    assert record["model"] == "jmvae" and sorted(record["epochs"]) == ["1", "2"]
    for row in record["epochs"].values():
        assert row["examples"] == 30 and row["k"] == 20
        assert -784 * 0.7 < row["joint"] < 0 and row["joint_se"] > 0  # nats of binary pixels
    capsys.readouterr()
    main(["evaluate", str(run), "--out", str(out), "--examples", "30", "--k", "20"])
    assert capsys.readouterr().out == ""  # nothing scored again
    assert json.loads(out.read_text()) == record

    main(["table", str(out), "--figure", str(tmp_path / "trend.png")])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| model | epoch 1 | epoch 2 | published |"
    first = record["epochs"]["1"]
    assert lines[2].startswith(
        f"| `jmvae` | {first['joint']:.2f} +- {first['joint_se']:.2f} (30) |"
    )
    assert lines[2].endswith(f" | {PUBLISHED['jmvae'][1]:.1f} |")
    assert (tmp_path / "trend.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
