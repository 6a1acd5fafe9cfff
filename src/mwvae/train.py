"""Train a model: `python -m mwvae.train [group=option ...] [key=value ...]`.

A thin Hydra entry point around `mwvae.training.train`: it answers `--help`
and refuses a bad config before torch and Lightning are imported (seconds
on a small machine), and returns the metric an optimising sweeper asks for.
"""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mwvae.config import ConfigError, precheck, register_configs

log = logging.getLogger(__name__)
register_configs()


def finished_metrics(cfg: DictConfig) -> dict[str, float] | None:
    """The metrics of a multirun job that already finished (its folder has
    metrics.json) when `skip_finished` is on: a re-launched sweep then runs
    only the jobs that did not finish. None: train."""
    hydra_cfg = HydraConfig.get() if HydraConfig.initialized() else None
    if not cfg.get("skip_finished") or hydra_cfg is None or hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    path = Path(cfg.paths.output_dir) / "metrics.json"
    if not path.exists():
        return None
    log.info("Skipping job %s: it finished already (%s)", hydra_cfg.job.num, path)
    return json.loads(path.read_text())


@hydra.main(version_base="1.3", config_path="../../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    if (finished := finished_metrics(cfg)) is not None:
        return finished.get(cfg.optimized_metric)
    try:
        precheck(cfg)
    except ConfigError as error:
        raise SystemExit(f"error: {error}") from None
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    from mwvae import training  # the heavy stack, once the config is known to be sane

    training.freeze_long_lived()
    try:
        metrics, objects = training.train(cfg)
    except training.USER_ERRORS as error:
        raise SystemExit(f"error: {error}") from None
    except SIGTERMException:
        # Stopped by SIGTERM (e.g. pre-emption) after saving checkpoints/interrupted.ckpt:
        # exit as a process killed by it would, not as a success.
        log.warning("Stopped by SIGTERM; resume with ckpt_path=last in this run folder")
        raise SystemExit(128 + signal.SIGTERM) from None
    if not objects["trainer"].is_global_zero:
        return None  # under DDP only rank zero evaluates, so only it has every metric
    if cfg.optimized_metric not in metrics:
        raise SystemExit(
            f"error: optimized_metric={cfg.optimized_metric!r} is not among this run's metrics: "
            f"{sorted(metrics)}"
        )
    return metrics[cfg.optimized_metric]


if __name__ == "__main__":
    main()
