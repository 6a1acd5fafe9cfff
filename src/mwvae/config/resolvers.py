"""The config's resolvers (`${mwvae.<name>:...}`): values that depend on the
launcher a multirun uses, the run's group and the model catalog."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig, OmegaConf

from mwvae.config.catalog import models


def sqlite_url(path: str) -> str:
    """`${mwvae.sqlite:<path>}`: an SQLite URL for `path`, its folder created
    (SQLite cannot create folders, and the sweeper opens it before any job runs)."""
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def _hydra_config() -> DictConfig | None:
    return HydraConfig.get() if HydraConfig.initialized() else None


def _is_multirun(hydra_cfg: DictConfig) -> bool:
    return hydra_cfg.get("mode") == RunMode.MULTIRUN


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, as SLURM or taskset set it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def threads_per_job() -> int | None:
    """`${mwvae.threads_per_job:}`: torch threads for one job of a multirun whose
    jobs share the machine, so that together they do not oversubscribe its cores.

    The joblib launcher runs `n_jobs` jobs at once: each gets
    floor(cores / n_jobs) threads, at least 1 (`n_jobs: -1` is one job per
    core, as in joblib). A submitit launcher gives each task its
    `cpus_per_task` when that is set. Otherwise (a single run, the basic
    launcher) None: torch's default."""
    hydra_cfg = _hydra_config()
    if hydra_cfg is None or not _is_multirun(hydra_cfg):
        return None
    launcher = hydra_cfg.launcher
    target = str(launcher.get("_target_", ""))
    cores = available_cores()
    if target.endswith("JoblibLauncher"):
        n_jobs = int(launcher.n_jobs)
        if n_jobs < 0:  # joblib's -1: all cores, -2: all but one, ...
            n_jobs = max(cores + 1 + n_jobs, 1)
        return max(cores // max(n_jobs, 1), 1)
    if "hydra_submitit_launcher" in target and launcher.get("cpus_per_task"):
        return int(launcher.cpus_per_task)
    return None


def run_group() -> str:
    """`${mwvae.run_group:}`: the experiment's name if one is selected, else the
    sweep folder's name for the jobs of a multirun, else `single`."""
    hydra_cfg = _hydra_config()
    if hydra_cfg is None:
        return "single"
    experiment = hydra_cfg.runtime.choices.get("experiment")
    if experiment:
        return str(experiment)
    if _is_multirun(hydra_cfg):
        return Path(str(hydra_cfg.sweep.dir)).name
    return "single"


def job_suffix() -> str:
    """`${mwvae.job_suffix:}`: `-job<N>` in the N-th job of a multirun, else empty."""
    hydra_cfg = _hydra_config()
    if hydra_cfg is None or not _is_multirun(hydra_cfg):
        return ""
    return f"-job{hydra_cfg.job.num}"


def unique(*items: Any) -> list[Any]:
    """`${mwvae.unique:a,${some_list},...}`: the values and the lists' values,
    in order, without repeats or nulls (tags)."""
    out: list[Any] = []
    for item in items:
        for value in item if isinstance(item, list | tuple | ListConfig) else [item]:
            if value is not None and value not in out:
                out.append(value)
    return out


RESOLVERS = {
    "mwvae.sqlite": sqlite_url,
    "mwvae.threads_per_job": threads_per_job,
    "mwvae.run_group": run_group,
    "mwvae.job_suffix": job_suffix,
    "mwvae.unique": unique,
    "mwvae.models": models,
}


def register_resolvers() -> None:
    for name, resolver in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
