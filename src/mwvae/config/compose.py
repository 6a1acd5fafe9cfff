"""The config a command would run with, composed outside a Hydra run
(tests, the bench, notebooks)."""

from __future__ import annotations

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from mwvae.config.catalog import CONF_DIR
from mwvae.config.store import register_configs
from mwvae.config.validation import complete


def compose_config(
    overrides: list[str] | tuple[str, ...] = (),
    config_name: str = "train",
    completed: bool = True,
) -> DictConfig:
    """The config `python -m mwvae.<config_name>` would run with, composed
    outside a Hydra run. Set `paths.output_dir`: there is no Hydra run folder
    here. The model's and the data's options are completed with their
    defaults (`completed=False`: as Hydra hands the config to `main`);
    `mwvae.config.validate` (which train runs) checks the rest."""
    register_configs()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # lets ${hydra:...} interpolations resolve
    with open_dict(cfg):
        del cfg["hydra"]
    if config_name == "train" and completed:
        complete(cfg)
    return cfg
