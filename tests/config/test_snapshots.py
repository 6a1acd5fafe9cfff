"""Option snapshots: a component's `Options` read back without its class, so
that `mwvae.train` refuses a bad config before importing torch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hydra.utils import get_class
from omegaconf import OmegaConf

from mwvae.config import ConfigError, compose_config, precheck, snapshots, validate
from mwvae.config.catalog import CONF_DIR, model_names, model_target

DATA_TARGETS = {str(OmegaConf.load(path)._target_) for path in (CONF_DIR / "data").glob("*.yaml")}
TARGETS = sorted({model_target(name) for name in model_names()} | DATA_TARGETS)
UNUSED = "paths.output_dir=/tmp/unused"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


def snapshot_components(cfg) -> None:
    for key in ("model", "data"):
        snapshots.save(cfg[key]._target_, get_class(cfg[key]._target_))


@pytest.mark.parametrize("target", TARGETS)
def test_every_component_reads_back_as_declared(cache, target):
    owner = get_class(target)
    snapshots.save(target, owner)
    name, schema = snapshots.load(target)
    assert name == owner.__name__
    assert snapshots.describe(schema) == snapshots.describe(owner.Options)
    # Defaults and types agree field by field, nested dataclasses included.
    expected = OmegaConf.to_container(OmegaConf.structured(owner.Options))
    assert OmegaConf.to_container(OmegaConf.structured(schema)) == expected


@pytest.mark.parametrize(
    "overrides",
    [
        ["model.align_weight=abc"],
        ["model.algn_weight=1"],
        ["model.beta=-1"],
        ["data.batch_size=0"],
        ["data.paired_fraction=2"],
        ["data=polymnist", "model=mmvae_plus", "model.k=0"],
        ["data=polymnist", "model=mmvae_plus", "model.estimator=none"],
        ["data=coco_demo", "model=jmvae", "+data.nope=1"],
    ],
)
def test_precheck_refuses_what_validate_refuses_with_the_same_message(cache, overrides):
    raw = compose_config([*overrides, UNUSED], completed=False)
    snapshot_components(raw)
    with pytest.raises(ConfigError) as full:
        validate(compose_config([*overrides, UNUSED], completed=False))
    with pytest.raises(ConfigError) as quick:
        precheck(raw)
    assert str(quick.value) == str(full.value)


def test_precheck_leaves_the_config_as_it_was_and_passes_a_good_one(cache):
    raw = compose_config(["data=polymnist", "model=mvtcae", UNUSED], completed=False)
    snapshot_components(raw)
    before = OmegaConf.to_container(raw)
    precheck(raw)
    assert OmegaConf.to_container(raw) == before


def test_without_a_snapshot_only_the_schema_is_checked(cache):
    precheck(compose_config(["model.algn_weight=1", UNUSED], completed=False))  # no snapshot yet
    with pytest.raises(ConfigError, match="latent.dim"):
        precheck(compose_config(["latent.dim=0", UNUSED], completed=False))


def test_a_damaged_snapshot_is_ignored(cache):
    target = "mwvae.models.mw_vae.MWVAE"
    snapshots.save(target, get_class(target))
    snapshots.path_of(target).write_text('{"owner": "MWVAE", "schema": {"fiel')
    assert snapshots.load(target) is None
    precheck(compose_config(["model.algn_weight=1", UNUSED], completed=False))


def test_snapshots_belong_to_the_sources_that_wrote_them(cache, monkeypatch):
    target = "mwvae.models.mw_vae.MWVAE"
    snapshots.save(target, get_class(target))
    assert snapshots.load(target) is not None
    monkeypatch.setattr(snapshots, "sources_hash", lambda: "edited-sources")
    assert snapshots.load(target) is None
    assert snapshots.path_of("mylab.models.MyVAE") is None  # only mwvae's own


def test_the_command_line_refuses_a_bad_value_without_importing_torch(cache, tmp_path):
    target = "mwvae.models.mw_vae.MWVAE"
    snapshots.save(target, get_class(target))
    env = os.environ | {"XDG_CACHE_HOME": str(cache), "PYTHONPROFILEIMPORTTIME": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mwvae.train",
            "model.align_weight=abc",
            f"hydra.run.dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    errors = [line for line in lines if not line.startswith("import time:")]
    assert errors == [
        "error: model.align_weight: Value 'abc' of type 'str' could not be converted to Float"
    ]
    imported = {
        line.rsplit("|", 1)[-1].strip() for line in lines if line.startswith("import time:")
    }
    assert (
        "omegaconf" in imported and "torch" not in imported and "pytorch_lightning" not in imported
    )
