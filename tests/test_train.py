"""The training entry point, end to end: composed configs, the CLI, outputs,
checkpoints, resuming and config errors."""

from __future__ import annotations

import csv
import gc
import json
import logging
import os
import subprocess
import weakref
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from mwvae import load_model, training
from mwvae.config import ConfigError, compose_config
from mwvae.config.catalog import model_class, model_names
from mwvae.data.coco_demo import generate_coco_demo
from mwvae.data.coco_demo_reading import ATTRIBUTES
from mwvae.data.mnist_source import DatasetMissingError
from mwvae.evaluation.caption_scores import SCORES
from mwvae.training import NVML_CHECK, freeze_long_lived, skip_unloadable_nvml, train
from tests.cli import run_module
from tests.subsets import SUBSET

ROOT = Path(__file__).resolve().parents[1]
QUIET = [
    "logger=none",
    "callbacks.progress_bar.refresh_rate=0",
    f"paths.root_dir={ROOT}",
    "evaluation.likelihood.k=20",
    "evaluation.likelihood.num_samples=40",
    "evaluation.joint_samples=500",
]


def config(tmp_path, *overrides):
    return compose_config([*QUIET, f"paths.output_dir={tmp_path}", *overrides])


def run_cli(*overrides, run_dir: Path, env=None) -> subprocess.CompletedProcess:
    return run_module(
        "mwvae.train",
        *QUIET,
        f"hydra.run.dir={run_dir}",
        *overrides,
        env=env,
    )


MODELS = model_names()


@pytest.mark.parametrize("data", ["mnist", "mnist3"])
@pytest.mark.parametrize("model", MODELS)
def test_fast_dev_run_of_every_model_through_composed_configs(tmp_path, model, data):
    # On mnist, half the training examples miss a modality, for the models that can
    # train so; mnist3 stays complete.
    weak = data == "mnist" and model_class(model).trains_on_incomplete_data
    overrides = ["data.paired_fraction=0.5"] if weak else []
    metrics, objects = train(
        config(tmp_path, f"model={model}", f"data={data}", "debug=fast", *overrides)
    )
    assert objects["trainer"].state.finished
    assert torch.isfinite(torch.tensor(metrics["test/loss"]))
    assert objects["model"].last_training_terms["loss"].isfinite()
    if objects["model"].can_infer_from(["image"]) and not model_class(model).unimodal:
        assert "val/coherence/image_to_label" in metrics


def test_seed_is_honoured_zero_included(tmp_path):
    def test_loss(seed, name):
        return train(config(tmp_path / name, "debug=fast", f"seed={seed}"))[0]["test/loss"]

    assert test_loss(0, "a") == test_loss(0, "b")
    assert test_loss(0, "c") != test_loss(1, "d")


def test_load_model_rebuilds_the_trained_model_from_its_checkpoint(tmp_path):
    cfg = config(tmp_path, SUBSET, "trainer.max_epochs=1", "figures=false")
    _, objects = train(cfg)
    model, datamodule = objects["model"], objects["datamodule"]
    loaded = load_model(objects["trainer"].checkpoint_callback.best_model_path)
    assert not loaded.training
    batch = next(iter(datamodule.test_dataloader()))
    model.eval()
    for observed in ({"image": batch["image"]}, {"label": batch["label"]}, batch):
        expected, actual = model.reconstruct(observed), loaded.reconstruct(observed)
        for name in expected:
            torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=0)


def test_cli_writes_the_run_folder_and_resumes_from_last(tmp_path):
    run_dir = tmp_path / "run"
    first = run_cli(SUBSET, "trainer.max_epochs=1", run_dir=run_dir)
    assert first.returncode == 0, first.stderr[-3000:]

    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in (
        "test/loss",
        "test/recon/image",
        "test/recon/label",
        "test/kl/image",
        "test/kl/label",
        "test/w2",
        "val/coherence/image_to_label",
        "val/loss",
        "test/coherence/label_to_image",
        "test/loglik/joint",
        "test/probe/image",
    ):
        assert key in metrics
    for name in ("training_curves", "reconstructions", "latent_projection"):
        assert (run_dir / "figures" / f"{name}.png").stat().st_size > 0
    assert (run_dir / "config.yaml").exists() and (run_dir / "history.csv").exists()
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    machine = json.loads((run_dir / "machine.json").read_text())
    assert machine["torch"] == torch.__version__ and machine["logical_cores"] >= 1

    resumed = run_cli(SUBSET, "trainer.max_epochs=2", "ckpt_path=last", run_dir=run_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 1  # the second epoch ran; the first was not repeated
    with (run_dir / "history.csv").open() as file:
        rows = list(csv.DictReader(file))
    validated = [int(row["epoch"]) for row in rows if row.get("val/loss")]
    assert validated == [0, 1]  # the history of the first run was kept and continued
    # Fewer steps an epoch than log_every_n_steps: each epoch's last step is recorded.
    assert [int(row["epoch"]) for row in rows if row.get("train/loss")] == [0, 1]


def test_a_failing_figure_costs_neither_the_metrics_nor_the_other_figures(
    tmp_path, monkeypatch, caplog
):
    def fails(*args, **kwargs):
        raise RuntimeError("no figure today")

    monkeypatch.setattr("mwvae.evaluation.suite.plot_reconstructions", fails)
    # A 1-d latent too, which a projection to two principal components cannot draw.
    with caplog.at_level(logging.WARNING):
        train(config(tmp_path, SUBSET, "trainer.max_epochs=1", "latent.dim=1"))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert "test/coherence/image_to_label" in metrics and "test/loss" in metrics
    assert "Figure reconstructions skipped: RuntimeError: no figure today" in caplog.messages
    assert not (tmp_path / "figures" / "reconstructions.png").exists()
    for name in ("training_curves", "latent_projection"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 10_000


def test_training_the_classifiers_is_timed_apart_from_the_evaluation(tmp_path, monkeypatch):
    """time/evaluation_seconds is the evaluation's own time in every run: the
    classifiers that a dataset's first evaluation trains (then caches) are
    loaded, or trained, before it, into time/classifier_seconds."""
    clock = {"now": 0.0}  # training.py's own clock, advanced by the two stand-ins below
    monkeypatch.setattr(training, "time", SimpleNamespace(perf_counter=lambda: clock["now"]))

    def advancing(seconds, value):
        def call(*args, **kwargs):
            clock["now"] += seconds
            return value

        return call

    monkeypatch.setattr(training, "load_classifiers", advancing(100.0, {}))
    monkeypatch.setattr(training, "evaluate", advancing(2.0, {"test/coherence/joint": 0.5}))
    metrics, _ = train(config(tmp_path, "debug=fast", "evaluate=true", "figures=false"))
    assert metrics["time/classifier_seconds"] == 100.0
    assert metrics["time/evaluation_seconds"] == 2.0
    assert metrics["test/coherence/joint"] == 0.5


def test_wandb_runs_offline_and_receives_the_figures(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    overrides = [SUBSET, "trainer.max_epochs=1", "logger=wandb"]
    train(compose_config([*QUIET, f"paths.output_dir={tmp_path}", *overrides]))
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    assert list(run.glob("*.wandb"))
    assert list((run / "files" / "media" / "images" / "figures").glob("reconstructions_*.png"))


@pytest.mark.parametrize(
    ("override", "cause", "message"),
    [
        ("latent.dim=lots", ValidationError, "full_key: latent.dim"),
        ("model=nonexistent", type(None), "Available options in 'model'"),
    ],
)
def test_config_typos_fail_at_composition(tmp_path, override, cause, message):
    with pytest.raises(ConfigCompositionException) as raised:
        config(tmp_path, override)
    assert isinstance(raised.value.__cause__, cause)
    assert message in str(raised.value) + str(raised.value.__cause__)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.alig_weight=1", "model.alig_weight: MWVAE has no option"),
        ("latent.dim=0", "latent.dim"),
        ("model.align_weight=-1", "model.align_weight"),
        ("data.modalities.label.likelihood=poisson", "likelihood"),
    ],
)
def test_impossible_values_fail_before_training(tmp_path, override, key):
    with pytest.raises(ConfigError, match=key):
        train(config(tmp_path, override))
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("override", ["model.align_weight=abc", "trainer.max_epochs=one"])
def test_cli_reports_a_bad_value_by_key_and_starts_nothing(tmp_path, override):
    result = run_cli(override, "logger=wandb", run_dir=tmp_path)
    assert result.returncode != 0
    assert f"error: {override.split('=')[0]}:" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "wandb").exists()


def test_missing_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetMissingError, match="make data"):
        train(config(tmp_path, f"paths.data_dir={tmp_path}/nowhere", "debug=fast"))


COCO_DEMO = ["data=coco_demo", "data.num_train=40", "data.num_val=20"]


@pytest.mark.parametrize("model", MODELS)
def test_fast_dev_run_of_every_model_on_coco(tmp_path, coco_data_dir, model):
    metrics, objects = train(
        config(
            tmp_path, f"model={model}", *COCO_DEMO, f"paths.data_dir={coco_data_dir}", "debug=fast"
        )
    )
    assert objects["trainer"].state.finished
    assert torch.isfinite(torch.tensor(metrics["test/loss"]))


def test_coco_demo_run_evaluates_retrieval_and_draws_fig14(tmp_path, coco_data_dir):
    metrics, _ = train(
        config(
            tmp_path,
            "experiment=coco_demo",
            *COCO_DEMO,
            f"paths.data_dir={coco_data_dir}",
            "trainer.max_epochs=1",
        )
    )
    for measure in ("posterior", "decoded", "chance"):
        for direction in ("caption_to_image", "image_to_caption"):
            for k in (1, 5, 10):
                assert 0 <= metrics[f"test/retrieval/{measure}/{direction}/r@{k}"] <= 1
    assert metrics["test/retrieval/chance/caption_to_image/r@10"] == pytest.approx(10 / 20)
    for k in (1, 5, 10):
        assert 0 <= metrics[f"test/retrieval/posterior_fused/caption_to_image/r@{k}"] <= 1
    assert (tmp_path / "figures" / "caption_reconstructions.png").stat().st_size > 10_000


def test_coco_demo_with_token_captions_scores_what_generated_captions_say(tmp_path, coco_data_dir):
    metrics, objects = train(
        config(
            tmp_path,
            "experiment=coco_demo",
            "data/text=tokens",
            *COCO_DEMO,
            f"paths.data_dir={coco_data_dir}",
            "trainer.max_epochs=1",
            "figures=false",
            "evaluation.likelihood.num_samples=10",
            "evaluation.joint_samples=100",
            "evaluation.fd_samples=20",
        )
    )
    datamodule = objects["datamodule"]
    assert datamodule.captioned["test"].captions.dtype == torch.long
    assert datamodule.vocabulary.decode(datamodule.captioned["test"].captions[:1])[0]
    for attribute in ATTRIBUTES:
        for source in ("image_to_caption", "joint_to_caption", "caption_to_caption", "chance"):
            key = f"test/caption_attributes/{source}/{attribute}"
            assert 0 <= metrics[key] <= 1, key
    for score in SCORES:
        for source in ("image_to_caption", "joint_to_caption", "caption_to_caption", "chance"):
            assert metrics[f"test/caption_text/{source}/{score}"] >= 0
    assert 0 <= metrics["test/coherence/image_to_caption"] <= 1
    assert "test/retrieval/decoded/caption_to_image/r@1" not in metrics  # needs embeddings
    assert 0 <= metrics["test/retrieval/posterior/caption_to_image/r@1"] <= 1
    assert 0 <= metrics["test/recon_token_error_rate/image_only/caption"] <= 1


def test_coco_with_token_captions_scores_them_against_the_references(tmp_path, coco_data_dir):
    """data=coco (the official layout: here a generated demo in it) knows nothing of what
    a caption says, so written captions are scored by BLEU-4 and CIDEr-D only."""
    root = generate_coco_demo(coco_data_dir / "coco_layout", num_train=40, num_val=20)
    metrics, _ = train(
        config(
            tmp_path,
            "data=coco",
            "data/text=tokens",
            f"data.root={root}",
            "trainer.max_epochs=1",
            "figures=false",
            "evaluation.likelihood.num_samples=10",
            "evaluation.fd_samples=20",
        )
    )
    for score in SCORES:
        for source in ("image_to_caption", "joint_to_caption", "chance"):
            assert metrics[f"test/caption_text/{source}/{score}"] >= 0
    assert metrics["test/caption_text/chance/cider_d"] > 0  # other scenes share words
    assert not [k for k in metrics if "caption_attributes" in k]


def test_a_caption_format_without_its_networks_fails_before_training(tmp_path):
    with pytest.raises(ConfigError, match="data/text=tokens"):
        train(config(tmp_path, *COCO_DEMO, "data.caption_format=tokens", "debug=fast"))


def test_coco_without_a_dataset_says_what_to_download(tmp_path):
    with pytest.raises(DatasetMissingError, match="images.cocodataset.org"):
        train(config(tmp_path, "data=coco", f"data.root={tmp_path}/nowhere", "debug=fast"))


def test_coco_images_without_captions_train_with_the_caption_hidden(tmp_path):
    overrides = ["data=coco_demo", "data.num_train=40", "data.num_val=10", "debug=fast"]
    overrides += ["data.num_uncaptioned=10", f"paths.data_dir={tmp_path}", "data.batch_size=40"]
    metrics, objects = train(config(tmp_path, *overrides))
    assert torch.isfinite(torch.tensor(metrics["test/loss"]))
    batch = next(iter(objects["datamodule"].train_dataloader()))
    assert (~batch["mask/caption"]).sum() == 10 and batch["mask/image"].all()


def test_freezing_the_stack_frees_a_previous_jobs_garbage_first():
    class Job:
        pass

    job = Job()
    job.itself = job  # a cycle: only a collection frees it
    previous = weakref.ref(job)
    del job
    try:
        freeze_long_lived()
        assert previous() is None
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def refuse_to_load(name):
    raise OSError(f"{name}: cannot open shared object file")


@pytest.mark.parametrize(
    ("loads", "kept"), [(refuse_to_load, False), (lambda name: object(), True)]
)
def test_the_nvml_check_lightning_asks_for_is_dropped_only_where_nvml_cannot_load(
    monkeypatch, loads, kept
):
    monkeypatch.setenv(NVML_CHECK, "1")
    monkeypatch.setattr(training.ctypes, "CDLL", loads)
    skip_unloadable_nvml()
    assert (os.environ.get(NVML_CHECK) == "1") is kept


def test_an_unset_nvml_check_stays_unset(monkeypatch):
    monkeypatch.delenv(NVML_CHECK, raising=False)
    monkeypatch.setattr(training.ctypes, "CDLL", refuse_to_load)
    skip_unloadable_nvml()
    assert NVML_CHECK not in os.environ
