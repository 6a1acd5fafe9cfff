"""Killed and pre-empted runs resume to the metrics of an uninterrupted run.

A run killed at any point (SIGKILL) resumes with `ckpt_path=last` from its
last epoch-end checkpoint; one stopped by SIGTERM (pre-emption) first saves
checkpoints/interrupted.ckpt mid-epoch and resumes from that batch. Either
way the final metrics equal those of a run never interrupted (same seed, CPU),
and a re-launched multirun trains only the jobs that did not finish.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from mwvae.config import compose_config
from mwvae.data.loader import ClassPairedLoader
from mwvae.training import train
from tests.cli import run_module

ROOT = Path(__file__).resolve().parents[1]
RUN = [
    "logger=none",
    "callbacks.progress_bar.refresh_rate=0",
    f"paths.root_dir={ROOT}",
    "data.subset={train:512,val:256,test:256}",
    "data.batch_size=64",  # 8 steps an epoch
    "trainer.max_epochs=3",
    "evaluate=false",
    "figures=false",
]
KILL_STEP = 13  # in the middle of the second epoch (steps 8 to 15)


def killer(step: int | str, signal_name: str) -> list[str]:
    return [
        "+callbacks.killer._target_=tests.resume_helpers.SignalAfterStep",
        f"+callbacks.killer.step={step}",
        f"+callbacks.killer.signal_name={signal_name}",
    ]


def run_cli(*overrides: str, multirun: bool = False) -> subprocess.CompletedProcess:
    return run_module(
        "mwvae.train",
        *(["-m"] if multirun else []),
        *RUN,
        *overrides,
        env={"HYDRA_FULL_ERROR": "1"},
    )


def metrics(folder: Path) -> dict[str, float]:
    return json.loads((folder / "metrics.json").read_text())


def assert_same_metrics(actual: dict[str, float], expected: dict[str, float]) -> None:
    """Equal computations; the wall times (`time/...`) only need to exist in both."""
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        if name.startswith("time/"):
            continue
        assert actual[name] == pytest.approx(value, abs=1e-5, rel=0), name


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, float]:
    """The metrics of the run never interrupted (in this process: it is the
    same computation as the CLI's, with the same seed and thread count)."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    train(compose_config([*RUN, f"paths.output_dir={folder}"]))
    return metrics(folder)


def test_sigkill_mid_epoch_resumes_from_last_to_the_uninterrupted_metrics(tmp_path, uninterrupted):
    killed = run_cli(f"hydra.run.dir={tmp_path}", *killer(KILL_STEP, "SIGKILL"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (tmp_path / "metrics.json").exists()
    assert not (tmp_path / "checkpoints" / "interrupted.ckpt").exists()  # no chance to save
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 8  # the end of the first epoch

    resumed = run_cli(f"hydra.run.dir={tmp_path}", "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming from" in resumed.stdout and "last.ckpt" in resumed.stdout
    assert_same_metrics(metrics(tmp_path), uninterrupted)


def test_sigterm_mid_epoch_saves_the_batch_and_resumes_to_the_uninterrupted_metrics(
    tmp_path, uninterrupted
):
    stopped = run_cli(f"hydra.run.dir={tmp_path}", *killer(KILL_STEP, "SIGTERM"))
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-3000:]
    assert not (tmp_path / "metrics.json").exists()
    interrupted = tmp_path / "checkpoints" / "interrupted.ckpt"
    state = torch.load(interrupted, weights_only=True)
    assert state["global_step"] == KILL_STEP  # saved after the batch under way, mid-epoch
    assert state["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"epoch": 1, "served": KILL_STEP - 8}
    ]

    resumed = run_cli(f"hydra.run.dir={tmp_path}", "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "interrupted.ckpt" in resumed.stdout  # the newer one: "Resuming from ..."
    assert "not resumable" not in resumed.stderr
    assert not interrupted.exists()  # removed once the fit completed
    assert_same_metrics(metrics(tmp_path), uninterrupted)


def test_a_relaunched_multirun_skips_the_finished_job_and_resumes_the_killed_one(
    tmp_path, uninterrupted
):
    # Job 0 finishes; job 1 is killed mid-epoch, which ends the whole sweep.
    sweep = [
        f"hydra.sweep.dir={tmp_path}",
        "hydra.sweep.subdir=${hydra.job.num}",
        "ckpt_path=last",  # fresh where a job has no checkpoint yet
        *killer(f"1000,{KILL_STEP}", "SIGKILL"),
    ]
    first = run_cli(*sweep, multirun=True)
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    assert "training from the start" in first.stdout
    finished, killed = tmp_path / "0", tmp_path / "1"
    assert (finished / "metrics.json").exists() and not (killed / "metrics.json").exists()

    def outputs(folder: Path) -> dict[Path, int]:  # the run's own files (Hydra rewrites .hydra/)
        paths = [folder / "metrics.json", folder / "config.yaml", folder / "history.csv"]
        paths += (folder / "checkpoints").glob("*.ckpt")
        return {path: path.stat().st_mtime_ns for path in paths}

    finished_files = outputs(finished)

    again = run_cli(*sweep, multirun=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Skipping job 0" in again.stdout
    assert outputs(finished) == finished_files  # not trained again
    assert_same_metrics(metrics(killed), uninterrupted)  # same config and seed as job 0
    assert_same_metrics(metrics(finished), uninterrupted)


def test_the_loader_resumes_its_epoch_after_the_served_batches():
    tensors = {"image": torch.arange(40).float(), "label": torch.arange(40) % 4}

    def loader():
        return ClassPairedLoader(
            tensors, 8, source="image", pair_name="pair", class_key="label", shuffle=True, seed=3
        )

    whole = loader()
    whole.sampler.set_epoch(2)
    expected = list(whole)
    interrupted = loader()
    interrupted.sampler.set_epoch(2)
    iterator = iter(interrupted)
    next(iterator), next(iterator)
    state = interrupted.state_dict()
    assert state == {"epoch": 2, "served": 2}

    resumed = loader()
    resumed.load_state_dict(state)
    batches = list(resumed)
    assert len(batches) == len(expected) - 2
    for actual, wanted in zip(batches, expected[2:], strict=True):
        for name in wanted:
            assert torch.equal(actual[name], wanted[name])
    assert len(list(resumed)) == len(expected)  # the next epoch is whole again
