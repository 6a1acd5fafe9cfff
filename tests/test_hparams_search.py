"""The Optuna search: best parameters in the output, and a study that resumes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import optuna
import yaml

from tests.cli import run_module

ROOT = Path(__file__).resolve().parents[1]


def search(log_dir: Path, sweep_dir: Path) -> subprocess.CompletedProcess:
    return run_module(
        "mwvae.train",
        "hparams_search=mw_vae_optuna",
        "hydra.sweeper.n_trials=3",
        "data.subset={train:256,val:128,test:128}",
        "trainer.max_epochs=1",
        "figures=false",
        "evaluate=false",
        "callbacks.progress_bar.refresh_rate=0",
        f"paths.root_dir={ROOT}",
        f"paths.log_dir={log_dir}",
        f"hydra.sweep.dir={sweep_dir}",
    )


def test_search_reports_its_best_trial_and_resumes_the_study(tmp_path):
    first = search(tmp_path / "logs", tmp_path / "first")
    assert first.returncode == 0, first.stderr[-2000:]
    results = yaml.safe_load((tmp_path / "first" / "optimization_results.yaml").read_text())
    assert set(results["best_params"]) == {
        "model.align_weight",
        "model.beta",
        "optimizer.lr",
        "latent.dim",
    }
    storage = f"sqlite:///{tmp_path / 'logs' / 'optuna.db'}"
    study = optuna.load_study(study_name="mw_vae_mnist", storage=storage)
    assert len(study.trials) == 3
    assert 0 <= results["best_value"] <= 1  # an accuracy
    assert results["best_value"] == max(t.value for t in study.trials)
    for trial in study.trials:  # each trial's job trained with the sampled values
        job = yaml.safe_load((tmp_path / "first" / str(trial.number) / "config.yaml").read_text())
        assert job["model"]["align_weight"] == trial.params["model.align_weight"]
        assert job["latent"]["dim"] == trial.params["latent.dim"]
        assert job["optimizer"]["lr"] == trial.params["optimizer.lr"]

    second = search(tmp_path / "logs", tmp_path / "second")
    assert second.returncode == 0, second.stderr[-2000:]
    study = optuna.load_study(study_name="mw_vae_mnist", storage=storage)
    assert len(study.trials) == 6  # added to the study, not started over
