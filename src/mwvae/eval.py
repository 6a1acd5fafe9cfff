"""Evaluate a checkpoint: `python -m mwvae.eval ckpt_path=outputs/runs/<run>/checkpoints/last.ckpt`.

A thin CLI over `mwvae.evaluation.suite.evaluate`, which training calls at
the end of every run too; the metrics are defined in the README's glossary.
The data are the run's (from the config saved in the checkpoint, or its run
folder's config.yaml), with the command line's `data.*` overrides on top.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from mwvae import UntrustedFileError, check_targets
from mwvae.checkpoints import CheckpointError, read_checkpoint
from mwvae.config import ConfigError, register_configs, validate_data, validate_eval

log = logging.getLogger(__name__)
register_configs()


def run_config(ckpt_path: str | Path, config_path: str | Path | None = None) -> DictConfig:
    """The resolved config of the run that wrote a checkpoint: `config_path`
    when given, else the one saved in the checkpoint, else its run folder's
    config.yaml (checkpoints of runs before configs were saved in them)."""
    if config_path is not None:
        if not Path(config_path).is_file():
            raise ConfigError(f"run_config: {config_path} does not exist")
        return OmegaConf.load(config_path)
    saved = read_checkpoint(ckpt_path).get("mwvae_run_config")
    if saved is not None:
        return OmegaConf.create(saved)
    path = Path(ckpt_path).resolve().parent.parent / "config.yaml"
    if not path.exists():
        raise ConfigError(
            f"{ckpt_path} holds no run config and {path} does not exist: pass the config.yaml "
            "of the run that trained it, run_config=PATH"
        )
    return OmegaConf.load(path)


def run_datamodule(ckpt_path: str | Path, overrides: dict[str, Any] | None = None):
    """The DataModule of the run a checkpoint belongs to, with `overrides` of
    its data options (not yet set up)."""
    from hydra.utils import instantiate

    return instantiate(run_data(ckpt_path, overrides), _recursive_=False)


def run_data(
    ckpt_path: str | Path, overrides: dict[str, Any] | None = None, config_path=None
) -> DictConfig:
    """The data config of a checkpoint's run with `overrides`, checked."""
    data = run_config(ckpt_path, config_path).data
    check_targets(OmegaConf.to_container(data), f"the run config of {ckpt_path}")
    cfg = OmegaConf.create({"data": OmegaConf.merge(data, overrides or {})})
    validate_data(cfg)
    return cfg.data


def output_folder(cfg: DictConfig) -> Path:
    """`output_dir`, or `eval/` in the checkpoint's run folder (beside the
    checkpoint when it lies outside one)."""
    if cfg.output_dir:
        return Path(cfg.output_dir)
    checkpoint = Path(cfg.ckpt_path).resolve()
    in_run = checkpoint.parent.name == "checkpoints"
    return (checkpoint.parent.parent if in_run else checkpoint.parent) / "eval"


def log_to(folder: Path) -> logging.Handler:
    """The log also into `folder`/eval.log (Hydra writes no log file for eval)."""
    folder.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(folder / "eval.log")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


def run(cfg: DictConfig) -> dict[str, float]:
    """Evaluate `cfg.ckpt_path` as `cfg` says; a bad input exits with a one-line error."""
    try:
        validate_eval(cfg)
        log.info("Reading %s", cfg.ckpt_path)
        data = run_data(cfg.ckpt_path, OmegaConf.to_container(cfg.data), cfg.run_config)
    except (CheckpointError, ConfigError, UntrustedFileError) as error:
        raise SystemExit(f"error: {error}") from None
    from hydra.utils import instantiate

    from mwvae import load_model
    from mwvae.evaluation.classifier import load_classifiers
    from mwvae.evaluation.suite import draw_evaluation_figures, evaluate

    output_dir = output_folder(cfg)
    handler = log_to(output_dir)
    try:
        if cfg.threads:
            import torch

            torch.set_num_threads(cfg.threads)
        model = load_model(cfg.ckpt_path)
        subset = OmegaConf.to_container(data.get("subset") or {})
        log.info("Data: %s, subsets %s; results go to %s", data._target_, subset, output_dir)
        datamodule = instantiate(data, _recursive_=False)
        settings = OmegaConf.to_object(cfg.settings)
        # Loaded once (loading hashes the training data) for the metrics and the figures.
        classifiers = load_classifiers(datamodule, model.modality_names)
        metrics = evaluate(model, datamodule, settings, classifiers)
        text = json.dumps(metrics, indent=2, sort_keys=True) + "\n"
        (output_dir / "metrics.json").write_text(text)
        for name, value in sorted(metrics.items()):
            log.info("%-45s %.4f", name, value)
        log.info("Wrote %s", output_dir / "metrics.json")
        if settings.figures:  # after metrics.json: a figure that fails costs no result
            draw_evaluation_figures(model, datamodule, settings, output_dir, classifiers)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    return metrics


@hydra.main(version_base="1.3", config_path="../../conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
