"""Checkpoints are checked before they are trusted: resuming takes the
furthest-trained one that loads and fits the run, reports the others, and
stops with a one-line error when none can be used; a fit that fails before
its first step leaves no checkpoint; the eval CLI works on a checkpoint moved
out of its run folder and answers bad input in one line."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import pytorch_lightning as pl

from mwvae.checkpoints import CheckpointError, read_checkpoint, resume_from
from mwvae.config import compose_config
from mwvae.eval import run as evaluate_checkpoint
from mwvae.training import build_model, train
from tests.subsets import SIZES, SUBSET

ROOT = Path(__file__).resolve().parents[1]
RUN = [
    "logger=none",
    "callbacks.progress_bar.refresh_rate=0",
    f"paths.root_dir={ROOT}",
    SUBSET,
    "data.batch_size=64",  # 4 steps an epoch
    "trainer.max_epochs=2",
    "evaluate=false",
    "figures=false",
]


def config(folder: Path, *overrides: str):
    return compose_config([*RUN, f"paths.output_dir={folder}", *overrides])


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished 2-epoch run folder (8 steps); tests work on copies."""
    folder = tmp_path_factory.mktemp("trained") / "run"
    train(config(folder))
    return folder


@pytest.fixture
def run(trained, tmp_path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "run"))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_a_corrupt_last_ckpt_is_skipped_for_the_furthest_good_one(run, caplog):
    folder = run / "checkpoints"
    best = next(folder.glob("epoch*.ckpt"))
    truncate(folder / "last.ckpt")
    with caplog.at_level(logging.WARNING):
        chosen = resume_from("last", folder, build_model(config(run)))
    assert chosen.path == best and chosen.step == read_checkpoint(best)["global_step"] > 0
    assert "last.ckpt is not a complete checkpoint: truncated" in caplog.text
    assert f"resuming from {best.name} instead" in caplog.text


def test_resuming_past_a_corrupt_last_ckpt_trains_on_and_leaves_one_good_last(run):
    truncate(run / "checkpoints" / "last.ckpt")
    train(config(run, "ckpt_path=last", "trainer.max_epochs=3"))
    names = sorted(p.name for p in (run / "checkpoints").glob("*.ckpt"))
    assert "interrupted.ckpt" not in names and not [n for n in names if "-v" in n]
    assert read_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 12  # 3 x 4


def test_last_starts_fresh_only_in_a_folder_without_checkpoints(run, tmp_path):
    model = build_model(config(run))
    assert resume_from("last", tmp_path / "checkpoints", model) is None
    assert resume_from(None, run / "checkpoints", model) is None
    newest = max(
        (run / "checkpoints").glob("*.ckpt"), key=lambda p: read_checkpoint(p)["global_step"]
    )
    assert (
        resume_from("last", run / "checkpoints", model).step
        == read_checkpoint(newest)["global_step"]
    )


def test_when_no_checkpoint_can_resume_the_run_stops_naming_each(run):
    folder = run / "checkpoints"
    for path in folder.glob("*.ckpt"):
        path.write_text("not a checkpoint\n")
    with pytest.raises(CheckpointError) as error:
        resume_from("last", folder, build_model(config(run)))
    message = str(error.value)
    assert "no checkpoint in" in message and "\n" not in message
    assert all(path.name in message for path in folder.glob("*.ckpt"))
    assert "Move them away to start afresh" in message


def test_a_checkpoint_of_another_model_or_shape_cannot_resume(run):
    last = run / "checkpoints" / "last.ckpt"
    with pytest.raises(CheckpointError, match="written by MWVAE, this run trains MVAEPoE$"):
        resume_from(str(last), run, build_model(config(run, "model=mvae_poe")))
    with pytest.raises(CheckpointError, match="its latent size is 20, this run's is 8"):
        resume_from(str(last), run, build_model(config(run, "latent.dim=8")))
    wider = build_model(config(run, "data.modalities.image.encoder.hidden_dims=[64]"))
    with pytest.raises(CheckpointError, match="its parameter encoders.image"):
        resume_from(str(last), run, wider)


def test_a_changed_option_resumes_with_a_warning(run, caplog):
    m_vae = build_model(config(run, "model=m_vae"))  # MW-VAE's class without its W2 term
    with caplog.at_level(logging.WARNING):
        resume_from("last", run / "checkpoints", m_vae)
    assert "with model options changed: align_weight: 10.0 -> 0.0" in caplog.text


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "no such file"), ("text\n", "not a complete checkpoint"), ("", "not a complete")],
)
def test_what_is_not_a_checkpoint_is_named_in_one_line(tmp_path, content, reason):
    path = tmp_path / "model.ckpt"
    if content is not None:
        path.write_text(content)
    with pytest.raises(CheckpointError, match=reason) as error:
        read_checkpoint(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


class RaiseAtTrainStart(pl.Callback):
    def on_train_start(self, trainer, pl_module):
        raise RuntimeError("failed before the first step")


def test_a_fit_that_fails_before_its_first_step_leaves_no_checkpoint(tmp_path):
    callback = f"+callbacks.boom._target_={__name__}.RaiseAtTrainStart"
    with pytest.raises(RuntimeError, match="before the first step"):
        train(config(tmp_path, callback))
    assert not list(tmp_path.rglob("*.ckpt"))


def run_eval(*overrides: str) -> dict[str, float]:
    return evaluate_checkpoint(compose_config(overrides, config_name="eval"))


def test_eval_of_a_moved_checkpoint_writes_only_beside_it(run, tmp_path, monkeypatch, caplog):
    moved = tmp_path / "elsewhere" / "model.ckpt"
    moved.parent.mkdir()
    shutil.copy(run / "checkpoints" / "last.ckpt", moved)
    shutil.rmtree(run)  # no run folder, no config.yaml
    monkeypatch.chdir(tmp_path)
    # The tests' training images (their digit classifier is cached), fewer test ones
    data = [f"+data.subset.train={SIZES['train']}", "+data.subset.test=64"]
    small = ["settings.figures=false", "settings.likelihood.num_samples=0", "threads=1"]
    with caplog.at_level(logging.INFO):
        metrics = run_eval(f"ckpt_path={moved}", *data, *small)
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == [
        "elsewhere/eval/eval.log",
        "elsewhere/eval/metrics.json",
        "elsewhere/model.ckpt",
    ]
    assert json.loads((moved.parent / "eval" / "metrics.json").read_text()) == metrics
    assert 0 <= metrics["test/coherence/image_to_label"] <= 1
    log = (moved.parent / "eval" / "eval.log").read_text()
    assert f"subsets {{'train': {SIZES['train']}, 'val': 128, 'test': 64}}" in log


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ([], "error: ckpt_path: missing; name the checkpoint"),
        (["ckpt_path=nowhere.ckpt"], "error: nowhere.ckpt: no such file"),
        (["ckpt_path={text}"], "is not a complete checkpoint"),
        (["ckpt_path={ckpt}", "+data.batch_size=0"], "error: data.batch_size"),
        (["ckpt_path={ckpt}", "run_config=none.yaml"], "run_config: none.yaml does not exist"),
    ],
)
def test_eval_answers_bad_input_in_one_line(run, tmp_path, overrides, message):
    (tmp_path / "text.ckpt").write_text("text\n")
    paths = {"text": tmp_path / "text.ckpt", "ckpt": run / "checkpoints" / "last.ckpt"}
    with pytest.raises(SystemExit) as stopped:
        run_eval(*(o.format(**paths) for o in overrides))
    assert message in str(stopped.value) and "\n" not in str(stopped.value)
