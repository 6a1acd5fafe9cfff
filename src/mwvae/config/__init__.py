"""Configs: schemas, the one validation, composition, resolvers, the model catalog.

- `schema`: the primary configs' dataclasses (models and datasets declare
  their own options beside their code, see `mwvae.options`);
- `validation`: `validate(cfg)`, every check before anything is loaded, and
  `precheck(cfg)`, those that need no heavy import;
- `snapshots`: the components' option schemas, readable without their classes;
- `compose`: `compose_config(overrides)` outside a Hydra run;
- `resolvers`: `${mwvae.*:}` values (launchers, run groups, model lists);
- `catalog`: the models of `conf/model/`.
"""

from mwvae.config.catalog import CONF_DIR, model_names
from mwvae.config.compose import compose_config
from mwvae.config.store import register_configs
from mwvae.config.validation import ConfigError, precheck, validate, validate_data, validate_eval

__all__ = [
    "CONF_DIR",
    "ConfigError",
    "compose_config",
    "model_names",
    "precheck",
    "register_configs",
    "validate",
    "validate_data",
    "validate_eval",
]
