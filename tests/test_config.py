"""Every option of every config group composes against its schema and passes
the one validation; each bad value fails there, naming its key."""

from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf

from mwvae.config import CONF_DIR, ConfigError, compose_config, validate
from mwvae.config.catalog import (
    MODEL_DIR,
    model_class,
    model_names,
    models_that_train_on_incomplete_data,
)

GROUPS = [
    "model",
    "data",
    "optimizer",
    "latent",
    "trainer",
    "logger",
    "callbacks",
    "experiment",
    "debug",
]
OPTIONS = [
    (group, path.stem)
    for group in GROUPS
    for path in sorted((CONF_DIR / group).glob("*.yaml"))
    if not (group == "trainer" and path.stem == "default")
]


@pytest.mark.parametrize(("group", "option"), OPTIONS)
def test_every_option_composes(tmp_path, group, option):
    cfg = compose_config([f"{group}={option}", f"paths.output_dir={tmp_path}"])
    validate(cfg)
    assert cfg.latent.dim > 0
    assert cfg.model._target_.startswith("mwvae.models.")


def test_defaults_are_mw_vae_on_mnist_on_the_cpu(tmp_path):
    cfg = compose_config([f"paths.output_dir={tmp_path}"])
    assert cfg.model._target_ == "mwvae.models.mw_vae.MWVAE" and cfg.model.align_weight > 0
    assert cfg.data._target_ == "mwvae.data.MNISTDataModule"
    assert cfg.trainer.accelerator == "cpu"
    assert cfg.logger.wandb.mode in {"offline", "disabled", "online"}
    assert compose_config(["model=m_vae", f"paths.output_dir={tmp_path}"]).model.align_weight == 0


def test_coco_demo_keeps_the_demo_schema_and_the_coco_networks(tmp_path):
    cfg = compose_config(["data=coco_demo", "data.num_train=10", f"paths.output_dir={tmp_path}"])
    assert cfg.data._target_ == "mwvae.data.COCODemoDataModule"
    assert cfg.data.root.endswith("coco_demo_10_1000_0")
    assert cfg.data.modalities.image.encoder._target_ == "mwvae.nets.ConvEncoder"
    assert list(cfg.data.modalities.caption.encoder.input_shape) == [384]
    with pytest.raises(Exception, match="data.num_train"):
        compose_config(["data=coco_demo", "data.num_train=many", f"paths.output_dir={tmp_path}"])


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("data.caption=second", "data.caption"),
        ("data.embedding.pooling=max", "data.embedding.pooling"),
        ("data.val_fraction=1.5", "data.val_fraction"),
    ],
)
def test_bad_coco_values_name_their_key(tmp_path, override, key):
    cfg = compose_config(["data=coco", override, f"paths.output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=key):
        validate(cfg)


def test_gpu_bf16_is_the_gpu_preset_in_bf16_mixed_precision(tmp_path):
    cfg = compose_config(["trainer=gpu_bf16", f"paths.output_dir={tmp_path}"])
    assert (cfg.trainer.accelerator, cfg.trainer.precision) == ("gpu", "bf16-mixed")


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["compile.backend=inductr"], "compile.backend"),
        (["compile.backend=aot_eager", "compile.mode=max-autotune"], "compile.mode"),
        (["compile.mode=fastest"], "compile.mode"),
    ],
)
def test_bad_compile_options_name_their_key(tmp_path, overrides, key):
    cfg = compose_config(["compile.enabled=true", *overrides, f"paths.output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=key):
        validate(cfg)


def test_compile_options_that_work_pass(tmp_path):
    for overrides in (["compile.mode=max-autotune"], ["compile.backend=aot_eager"]):
        validate(
            compose_config(["compile.enabled=true", *overrides, f"paths.output_dir={tmp_path}"])
        )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.paired_fraction=1.5"], "data.paired_fraction: must be <= 1"),
        (["data.paired_fraction=0.1", "data.unpaired_keep=caption"], "data.unpaired_keep"),
        (["data.paired_fraction=0.1", "model=m_vae_joint"], "JointMVAE cannot train on exampl"),
        (["data.paired_fraction=0.1", "model=jmvae"], "JMVAE cannot train on examples"),
    ],
)
def test_bad_weak_supervision_settings_fail_before_training(tmp_path, overrides, message):
    cfg = compose_config([*overrides, f"paths.output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=message):
        validate(cfg)


def test_weak_supervision_settings_that_work_pass(tmp_path):
    for model in [*models_that_train_on_incomplete_data(), "vae"]:
        overrides = [f"model={model}", "data.paired_fraction=0.01", "data.unpaired_keep=label"]
        validate(compose_config([*overrides, f"paths.output_dir={tmp_path}"]))
    validate(compose_config(["model=m_vae_joint", f"paths.output_dir={tmp_path}"]))


def test_the_models_defaults_come_from_their_options(tmp_path):
    cfg = compose_config(["model=fmw_vae", f"paths.output_dir={tmp_path}"])
    defaults = model_class("fmw_vae").Options()
    assert cfg.model.private_dim == defaults.private_dim
    assert cfg.model.decorrelation == defaults.decorrelation
    assert cfg.optimizer._target_ == "torch.optim.Adam"


@pytest.mark.parametrize("name", model_names())
def test_a_model_yaml_restates_no_default(name):
    """A model's YAML holds its `_target_` and what differs from its Options."""
    own = OmegaConf.to_container(OmegaConf.load(MODEL_DIR / f"{name}.yaml"))
    defaults = dataclasses.asdict(model_class(name).Options())
    restated = {k: v for k, v in own.items() if k in defaults and defaults[k] == v}
    assert not restated, f"{name}.yaml restates the defaults {restated}"
    assert not set(own) - set(defaults) - {"_target_", "defaults"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["trainer.max_epochs=one"],
            "trainer.max_epochs: .*Trainer expects int or null, got 'one'",
        ),
        (["+trainer.max_epoch=3"], "trainer.max_epoch: .*Trainer takes no argument 'max_epoch'"),
        (["trainer.gradient_clip_algorithm=both"], "trainer.gradient_clip_algorithm"),
        (["optimizer.lr=fast"], "optimizer.lr: torch.optim.adam.Adam expects float"),
        (["model=mopoe", "model.align_weight=10"], "model.align_weight: MoPoE has no option"),
        (["model.algn_weight=1"], "model.algn_weight: MWVAE has no option 'algn_weight'"),
        (["model.align_weight=abc"], "model.align_weight: Value 'abc'"),
        (["model=fmw_vae", "model.style=bogus"], "model.style: 'bogus' is not one of"),
        (["model=vae", "model.modality=caption"], "model.modality: 'caption'"),
        (["data.batch_size=0"], "data.batch_size: must be >= 1"),
        (["data.modalities.label.likelihood=poisson"], "data.modalities.label.likelihood"),
        (["evaluation.likelihood.method=exact"], "evaluation.likelihood.method"),
        (["latent.dim=0"], "latent.dim: must be >= 1"),
        (["threads=0"], "threads: must be >= 1"),
    ],
)
def test_a_bad_value_fails_validation_naming_its_key(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose_config([*overrides, f"paths.output_dir={tmp_path}"]))
