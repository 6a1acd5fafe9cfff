"""Training: `train(cfg)` builds the model, the data and the Trainer, fits,
evaluates and writes the run folder, and returns `(metrics, objects)`.

The command line (`python -m mwvae.train`) is `mwvae.train`, which imports
this module (torch, Lightning) only once the config passed its quick checks.
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Timer
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from mwvae import UntrustedFileError
from mwvae.callbacks import NonFiniteLossError
from mwvae.checkpoints import CheckpointError, resume_from
from mwvae.config import ConfigError, register_configs, validate
from mwvae.data.mnist_source import DatasetMissingError
from mwvae.evaluation.classifier import Classifier, load_classifiers
from mwvae.evaluation.figures import draw_safely, plot_training_curves
from mwvae.evaluation.suite import draw_evaluation_figures, evaluate
from mwvae.machine import machine
from mwvae.models.base import IncompleteDataError

log = logging.getLogger(__name__)
register_configs()
NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"


def skip_unloadable_nvml() -> None:
    """Importing Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1, so that
    `torch.cuda.is_available()` asks NVML (safe before a fork). Without an
    NVIDIA driver NVML cannot be loaded, and torch tries to load it again at
    every call before it falls back to the CUDA runtime's answer anyway:
    once per optimizer step (`Optimizer.step` asks for the accelerator),
    0.06-0.7 ms on this CPU machine. There the variable is dropped: the same
    answers, without a failing `dlopen` per step."""
    if os.environ.get(NVML_CHECK) != "1":
        return
    try:
        ctypes.CDLL("libnvidia-ml.so.1")  # the library torch loads for it
    except OSError:
        del os.environ[NVML_CHECK]


skip_unloadable_nvml()

# What a user can fix: `mwvae.train` prints these as one line, without a traceback.
USER_ERRORS = (
    CheckpointError,
    ConfigError,
    DatasetMissingError,
    IncompleteDataError,
    NonFiniteLossError,
    UntrustedFileError,
)


def build_model(cfg: DictConfig) -> pl.LightningModule:
    """The model of `cfg.model` for the modalities of `cfg.data`, optimised by
    `cfg.optimizer`; hyperparameters are plain Python values, so checkpoints
    load with `weights_only=True`."""
    options = OmegaConf.to_container(cfg.model, resolve=True)
    model_class = get_class(options.pop("_target_"))
    return model_class(
        modalities=OmegaConf.to_container(cfg.data.modalities, resolve=True),
        latent_dim=cfg.latent.dim,
        optimizer=OmegaConf.to_container(cfg.optimizer, resolve=True),
        **options,
    )


def build_trainer(cfg: DictConfig) -> pl.Trainer:
    callbacks = [instantiate(spec) for spec in (cfg.get("callbacks") or {}).values()]
    loggers = [instantiate(spec) for spec in (cfg.get("logger") or {}).values()]
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)


def as_floats(results: list[dict[str, Any]]) -> dict[str, float]:
    return {k: float(v) for result in results for k, v in result.items()}


def seeded_model_and_data(cfg: DictConfig) -> tuple[pl.LightningModule, pl.LightningDataModule]:
    """The run's seed, then its DataModule and its initialised model: the
    same weights for the same config, wherever they are built."""
    if cfg.seed is not None:
        pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data, _recursive_=False)
    return build_model(cfg), datamodule


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit, then validate and test the best checkpoint; write the run folder."""
    validate(cfg)
    if cfg.get("threads"):
        torch.set_num_threads(cfg.threads)
    log.info("Torch threads: %d", torch.get_num_threads())
    output_dir = Path(cfg.paths.output_dir)
    model, datamodule = seeded_model_and_data(cfg)
    resumed = resume_from(cfg.ckpt_path, output_dir / "checkpoints", model)
    ckpt_path = None if resumed is None else str(resumed.path)
    model.run_config = OmegaConf.to_container(cfg, resolve=True)  # eval needs no run folder
    if cfg.compile.enabled:
        model.compile_networks(backend=cfg.compile.backend, mode=cfg.compile.mode)
    trainer = build_trainer(cfg)
    try:
        metrics = fit_and_evaluate(cfg, model, datamodule, trainer, ckpt_path)
    except BaseException:
        finish_loggers(trainer, exit_code=1)  # a launcher's next job must not join this run
        raise
    finish_loggers(trainer)
    return metrics, {"model": model, "datamodule": datamodule, "trainer": trainer}


def fit_and_evaluate(
    cfg: DictConfig,
    model: pl.LightningModule,
    datamodule: pl.LightningDataModule,
    trainer: pl.Trainer,
    ckpt_path: str | None,
) -> dict[str, float]:
    """Fit, validate and test the best checkpoint, then (rank zero) evaluate it,
    write metrics.json and, once the metrics are kept, draw the figures."""
    output_dir = Path(cfg.paths.output_dir)
    save_config(cfg, output_dir)
    for logger in trainer.loggers:
        logger.log_hyperparams(flat_config(cfg))

    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    # Now: loading a checkpoint to validate it restores the Timer's saved time as an offset.
    times = fit_times(trainer)
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    evaluated = best or None
    metrics = as_floats(trainer.validate(model, datamodule, ckpt_path=evaluated, weights_only=True))
    metrics |= as_floats(trainer.test(model, datamodule, ckpt_path=evaluated, weights_only=True))

    metrics |= times
    leave_process_group(trainer)

    if trainer.is_global_zero:
        classifiers = None
        if cfg.evaluate:
            settings = OmegaConf.to_container(cfg.evaluation, resolve=True)
            # Trained on a dataset's first evaluation on a machine, then cached: timed
            # apart, so that evaluation_seconds is the same quantity in every run.
            started = time.perf_counter()
            classifiers = load_classifiers(datamodule, model.modality_names)
            metrics["time/classifier_seconds"] = time.perf_counter() - started
            started = time.perf_counter()
            metrics |= evaluate(model, datamodule, settings, classifiers)
            metrics["time/evaluation_seconds"] = time.perf_counter() - started
        write_json(output_dir / "metrics.json", metrics)
        if cfg.figures:
            draw_figures(cfg, model, datamodule, trainer, classifiers)
        log_final_metrics(trainer, metrics)
        log.info("Run folder: %s", output_dir.resolve())
    return metrics


def freeze_long_lived() -> None:
    """Exempt what exists now (the imported stack's objects, which live as long
    as the process) from every later garbage collection: a 1-epoch run took
    17.0 s without, 14.5 s with. Collected first, so that a sequential
    multirun's previous job is freed, not frozen with them."""
    gc.collect()
    gc.freeze()


def leave_process_group(trainer: pl.Trainer) -> None:
    """Under DDP, every rank leaves the process group here, together, once
    testing is done: rank zero evaluates alone, and the other ranks exit.
    Lightning destroys only NCCL groups at exit; a process that exits inside
    a gloo group can abort in its teardown ("terminate called without an
    active exception", pytorch/pytorch#190489), and Lightning then kills
    every rank, rank zero mid-evaluation."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        trainer.strategy.barrier("leave_process_group")
        torch.distributed.destroy_process_group()


def fit_times(trainer: pl.Trainer) -> dict[str, float]:
    """`time/fit_seconds`, fit's wall time (validation and checkpoints
    included, summed over resumes), and `time/seconds_per_epoch`, from
    Lightning's `Timer` callback when the run has one."""
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    if timer is None or trainer.current_epoch == 0:
        return {}
    seconds = timer.time_elapsed("train")
    return {"time/fit_seconds": seconds, "time/seconds_per_epoch": seconds / trainer.current_epoch}


def flat_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config with dotted keys, for experiment trackers."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        else:
            flat[prefix] = node

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


@rank_zero_only
def save_config(cfg: DictConfig, output_dir: Path) -> None:
    """The resolved config, and the machine it runs on (for the run's record)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    write_json(output_dir / "machine.json", machine())


def write_json(path: Path, values: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")


def draw_figures(
    cfg: DictConfig,
    model: pl.LightningModule,
    datamodule: pl.LightningDataModule,
    trainer: pl.Trainer,
    classifiers: dict[str, Classifier] | None = None,
) -> None:
    """The evaluation's figures (when the run evaluates; `classifiers`: those
    it read with, None: loaded) and the training curves, a figure that fails
    logged and skipped; then every figure of the run sent to the loggers that
    take images."""
    output_dir = Path(cfg.paths.output_dir)
    figures_dir = output_dir / "figures"
    if cfg.evaluate:
        settings = OmegaConf.to_container(cfg.evaluation, resolve=True)
        draw_evaluation_figures(model, datamodule, settings, output_dir, classifiers)
    history = output_dir / "history.csv"
    if history.exists():
        title = f"{model.display_name}: training curves"
        out_path = figures_dir / "training_curves.png"
        draw_safely("training_curves", lambda: plot_training_curves(history, out_path, title))
    for logger in trainer.loggers:
        if hasattr(logger, "log_image"):
            for path in sorted(figures_dir.glob("*.png")):
                logger.log_image(key=f"figures/{path.stem}", images=[str(path)])


def log_final_metrics(trainer: pl.Trainer, metrics: dict[str, float]) -> None:
    """The final metrics (metrics.json's) as a W&B table and in the run's summary."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            rows = [[name, value] for name, value in sorted(metrics.items())]
            logger.log_table(key="final_metrics", columns=["metric", "value"], data=rows)
            logger.experiment.summary.update(metrics)


def finish_loggers(trainer: pl.Trainer, exit_code: int = 0) -> None:
    """Close every experiment run so that jobs of a multirun never merge."""
    for logger in trainer.loggers:
        experiment = getattr(logger, "_experiment", None)
        if experiment is not None and hasattr(experiment, "finish"):
            experiment.finish(exit_code=exit_code)
