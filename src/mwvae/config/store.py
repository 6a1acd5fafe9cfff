"""Hydra's ConfigStore entries and the resolvers, registered once."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from mwvae.config.resolvers import register_resolvers
from mwvae.config.schema import EvalConfig, TrainConfig


def register_configs() -> None:
    """Store the primary configs' schemas and register the resolvers (idempotent)."""
    register_resolvers()
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    store.store(name="eval_schema", node=EvalConfig)
