"""Hydra launchers (conf/hydra/launcher) and one W&B run per job: multiruns
through the CLI, with the joblib and submitit-local launchers, and the SLURM
launcher's config."""

from __future__ import annotations

import json
import re
import struct
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from mwvae.config import CONF_DIR, compose_config, register_configs
from mwvae.config.resolvers import available_cores, run_group, threads_per_job
from tests.cli import run_module

ROOT = Path(__file__).resolve().parents[1]
SMALL = [
    "callbacks.progress_bar.refresh_rate=0",
    f"paths.root_dir={ROOT}",
    "data.subset={train:256,val:128,test:128}",
    "trainer.max_epochs=1",
    "figures=false",
    "evaluate=false",
]


def run_multirun(*overrides, sweep_dir: Path, env=None) -> subprocess.CompletedProcess:
    """`python -m mwvae.train -m ...`, one run folder per job: <sweep_dir>/<job number>."""
    return run_module(
        "mwvae.train",
        "-m",
        *SMALL,
        f"hydra.sweep.dir={sweep_dir}",
        "hydra.sweep.subdir=${hydra.job.num}",
        *overrides,
        env={"WANDB_SILENT": "true", **(env or {})},
    )


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def log_span(job_dir: Path) -> tuple[datetime, datetime]:
    """The first and last timestamps of a job's log (train.log)."""
    stamps = re.findall(
        r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]", (job_dir / "train.log").read_text(), re.M
    )
    times = [datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f") for stamp in stamps]
    return times[0], times[-1]


def wandb_records(path: Path) -> Iterator[object]:
    """The records of an offline run's `.wandb` file (LevelDB's log format: 32 KiB
    blocks of [crc32, length, type] chunks after a 7-byte `:W&B` header)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, pos, pending = 32768, 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if left < 7 or (kind == 0 and length == 0):  # block trailer or padding
            pos += left
            continue
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 2):  # full, first
            pending = chunk
        else:  # middle, last
            pending += chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def read_offline_run(run_dir: Path) -> dict[str, object]:
    """An offline run's name, group, tags, config, summary and whether it finished."""
    (path,) = run_dir.glob("*.wandb")
    run: dict[str, object] = {"config": {}, "summary": {}, "exited": False}
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run |= {
                "id": record.run.run_id,
                "name": record.run.display_name,
                "group": record.run.run_group,
                "tags": list(record.run.tags),
            }
            updates = record.run.config.update
        elif kind == "config":
            updates = record.config.update
        elif kind == "summary":
            for item in record.summary.update:
                key = item.key or "/".join(item.nested_key)
                run["summary"][key] = json.loads(item.value_json)
            continue
        elif kind == "exit":
            run["exited"] = True
            continue
        else:
            continue
        for item in updates:
            run["config"][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return run


def expected_target(model: str, tmp_path: Path) -> str:
    return compose_config([f"model={model}", f"paths.output_dir={tmp_path}"]).model._target_


def test_joblib_multirun_runs_jobs_in_parallel_each_with_its_own_wandb_run(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_multirun(
        "model=mw_vae,m_vae",
        "seed=0,1",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "logger=wandb",
        sweep_dir=sweep_dir,
        env={"WANDB_MODE": "offline"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Joblib.Parallel(n_jobs=2," in output and "is launching 4 jobs" in output
    assert "validated against ConfigStore schema" not in output  # no deprecated schema matching

    jobs = job_dirs(sweep_dir)
    assert [job.name for job in jobs] == ["0", "1", "2", "3"]
    spans = [log_span(job) for job in jobs]
    # Two workers: jobs 0 and 1 start together and overlap.
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1]
    targets = {model: expected_target(model, tmp_path) for model in ("mw_vae", "m_vae")}
    run_ids = set()
    for num, (job, (model, seed)) in enumerate(
        zip(jobs, [("mw_vae", 0), ("mw_vae", 1), ("m_vae", 0), ("m_vae", 1)], strict=True)
    ):
        metrics = json.loads((job / "metrics.json").read_text())
        saved = OmegaConf.load(job / "config.yaml")
        assert saved.seed == seed and saved.model._target_ == targets[model]
        # n_jobs=2 jobs share the cores: floor(cores / 2) torch threads each.
        assert saved.threads == max(available_cores() // 2, 1)
        assert f"Torch threads: {saved.threads}" in (job / "train.log").read_text()

        (wandb_dir,) = (job / "wandb").glob("offline-run-*")
        run = read_offline_run(wandb_dir)
        run_ids.add(run["id"])
        assert run["name"] == f"{model}-mnist-seed{seed}-job{num}"
        assert run["group"] == sweep_dir.name
        assert run["tags"] == [model, "mnist", f"seed{seed}"]
        assert run["config"]["model._target_"] == targets[model]
        assert run["config"]["seed"] == seed
        assert run["exited"]  # the job finished its run
        assert run["summary"]["test/loss"] == pytest.approx(metrics["test/loss"])
        assert run["summary"]["final_metrics/_type"] == "table-file"
        (table_file,) = (wandb_dir / "files" / "media" / "table").glob("final_metrics_*.table.json")
        table = json.loads(table_file.read_text())
        assert table["columns"] == ["metric", "value"]
        assert dict(table["data"])["test/loss"] == pytest.approx(metrics["test/loss"])
    assert len(run_ids) == 4  # four runs, none merged


def test_submitit_local_multirun(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_multirun(
        "seed=0,1",
        "hydra/launcher=submitit_local",
        "hydra.launcher.cpus_per_task=1",
        "logger=none",
        sweep_dir=sweep_dir,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    jobs = job_dirs(sweep_dir)
    assert [job.name for job in jobs] == ["0", "1"]
    for seed, job in enumerate(jobs):
        assert "test/loss" in json.loads((job / "metrics.json").read_text())
        saved = OmegaConf.load(job / "config.yaml")
        assert saved.seed == seed and saved.threads == 1  # cpus_per_task
        # Applied: submitit, unlike joblib's loky workers, sets no OMP_NUM_THREADS.
        assert "Torch threads: 1" in (job / "train.log").read_text()
    assert list((sweep_dir / ".submitit").glob("*/*_0_log.out"))  # submitit ran the jobs


def hydra_config(*overrides: str):
    """The composed config with its `hydra` node, as a job sees it."""
    register_configs()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.job.name = "train"
        cfg.hydra.runtime.output_dir = "/tmp/unused"
    HydraConfig.instance().set_config(cfg)
    return cfg


def test_slurm_launcher_follows_the_trainer_and_the_environment(monkeypatch):
    monkeypatch.setenv("SLURM_PARTITION", "debug")
    monkeypatch.delenv("SLURM_ACCOUNT", raising=False)
    cfg = hydra_config(
        "hydra/launcher=slurm",
        "trainer=gpu",
        "trainer.devices=4",
        "trainer.num_nodes=2",
        "hydra.sweep.dir=/scratch/sweep",
        "hydra.mode=MULTIRUN",
    )
    launcher = instantiate(cfg.hydra.launcher)  # what submitit will be given
    params = launcher.params
    assert type(launcher).__name__ == "SlurmLauncher"
    assert (params["nodes"], params["gpus_per_node"], params["tasks_per_node"]) == (2, 4, 4)
    assert params["partition"] == "debug" and params["account"] is None
    assert params["submitit_folder"] == "/scratch/sweep/.submitit/%j"
    assert params["cpus_per_task"] > 0 and params["mem_gb"] > 0 and params["timeout_min"] > 0
    assert threads_per_job() == params["cpus_per_task"]  # each task's torch threads


@pytest.mark.parametrize(
    ("overrides", "threads"),
    [
        (["hydra.mode=RUN", "hydra/launcher=joblib"], None),  # no parallel jobs in a single run
        (["hydra.mode=MULTIRUN"], None),  # the basic launcher runs jobs one by one
        (["hydra.mode=MULTIRUN", "hydra/launcher=joblib"], max(available_cores() // 2, 1)),
        (["hydra.mode=MULTIRUN", "hydra/launcher=joblib", "hydra.launcher.n_jobs=-1"], 1),
        (
            ["hydra.mode=MULTIRUN", "hydra/launcher=joblib", "hydra.launcher.n_jobs=1"],
            available_cores(),
        ),
    ],
)
def test_threads_per_job(overrides, threads):
    hydra_config(*overrides)
    assert threads_per_job() == threads


@pytest.mark.parametrize(
    ("overrides", "group"),
    [
        (["hydra.mode=RUN"], "single"),
        (["hydra.mode=MULTIRUN", "hydra.sweep.dir=/x/outputs/multiruns/2024-01-01"], "2024-01-01"),
        (["hydra.mode=MULTIRUN", "experiment=mw_vae_mnist"], "mw_vae_mnist"),
        (["hydra.mode=RUN", "experiment=mw_vae_mnist"], "mw_vae_mnist"),
    ],
)
def test_wandb_group(overrides, group):
    cfg = hydra_config(*overrides)
    assert run_group() == group
    assert cfg.logger.wandb.group == group


def test_wandb_name_and_tags_of_a_single_run():
    cfg = hydra_config("hydra.mode=RUN", "seed=3", "experiment=mw_vae_mnist")
    # The W&B tags are the model, data and seed, and the experiment's own tags.
    assert cfg.logger.wandb.name == "mw_vae-mnist-seed3"
    assert list(cfg.logger.wandb.tags)[:3] == ["mw_vae", "mnist", "seed3"]
    assert "paper" in cfg.logger.wandb.tags
