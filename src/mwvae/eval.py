"""Evaluate a checkpoint: `python -m mwvae.eval ckpt_path=outputs/runs/<run>/checkpoints/last.ckpt`.

A thin CLI over `mwvae.evaluation.suite.evaluate`, which training calls at
the end of every run too; the metrics are defined in the README's glossary.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mwvae import UntrustedFileError, check_targets, load_model
from mwvae.config import ConfigError, register_configs, validate_eval
from mwvae.evaluation.suite import evaluate

log = logging.getLogger(__name__)
register_configs()


def run_config(ckpt_path: Path) -> DictConfig:
    """The resolved config saved in the checkpoint's run folder."""
    path = Path(ckpt_path).resolve().parent.parent / "config.yaml"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: evaluate checkpoints inside a run folder of mwvae.train"
        )
    return OmegaConf.load(path)


def run_datamodule(ckpt_path: Path):
    """The DataModule of the run a checkpoint belongs to (not yet set up)."""
    return instantiate(run_config(ckpt_path).data, _recursive_=False)


@hydra.main(version_base="1.3", config_path="../../conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    try:
        validate_eval(cfg)
        model = load_model(cfg.ckpt_path)
        run = run_config(cfg.ckpt_path)
        check_targets(OmegaConf.to_container(run.data), "the run folder's config.yaml")
    except (ConfigError, UntrustedFileError) as error:
        raise SystemExit(f"error: {error}") from None
    datamodule = instantiate(run.data, _recursive_=False)
    output_dir = Path(cfg.output_dir or Path(cfg.ckpt_path).resolve().parent.parent / "eval")
    metrics = evaluate(model, datamodule, OmegaConf.to_object(cfg.settings), output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    for name, value in sorted(metrics.items()):
        log.info("%-45s %.4f", name, value)
    log.info("Wrote %s", output_dir / "metrics.json")


if __name__ == "__main__":
    main()
