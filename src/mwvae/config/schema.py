"""The schemas of the primary configs (`train`, `eval`) and of the groups
without a `_target_` (latent, paths): a typo or a wrong type fails at
composition. Models and datasets declare their own options beside their
code (`<Class>.Options`, see `mwvae.options`); `mwvae.config.validation`
completes and checks those."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from mwvae.evaluation.settings import EvaluationSettings
from mwvae.options import bounded


def component_node() -> DictConfig:
    """The node of a component that declares its options in code (`model`,
    `data`): open, so that `model.<option>=...` sets any of its options from
    the command line (its YAML holds only what differs from the defaults);
    `mwvae.config.validation.complete` then fills in the defaults and refuses
    the keys its `Options` lacks."""
    return OmegaConf.create({}, flags={"struct": False})


@dataclass
class LatentConfig:
    dim: int = bounded(MISSING, minimum=1)


@dataclass
class PathsConfig:
    root_dir: str = MISSING
    data_dir: str = MISSING
    log_dir: str = MISSING
    output_dir: str = MISSING


@dataclass
class CompileConfig:
    """torch.compile of the model's encoders and decoders (pays off on a GPU).
    backend: inductor generates fused kernels; aot_eager and eager only trace
    (debugging). mode: inductor's mode, e.g. max-autotune (null: its default)."""

    enabled: bool = False
    backend: str = "inductor"
    mode: str | None = None


@dataclass
class TrainConfig:
    model: Any = field(default_factory=component_node)  # <model class>.Options
    data: Any = field(default_factory=component_node)  # <DataModule class>.Options
    optimizer: Any = MISSING  # a torch.optim spec with _partial_: true
    latent: LatentConfig = MISSING
    trainer: Any = MISSING  # pytorch_lightning.Trainer's arguments
    paths: PathsConfig = MISSING
    logger: Any = None
    callbacks: Any = None
    seed: int | None = 42
    ckpt_path: str | None = None
    skip_finished: bool = True
    tags: list[str] = field(default_factory=list)
    optimized_metric: str = "val/loss"
    figures: bool = True
    evaluate: bool = True
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    threads: int | None = bounded(None, minimum=1)
    compile: CompileConfig = field(default_factory=CompileConfig)


@dataclass
class EvalConfig:
    """`python -m mwvae.eval`: a checkpoint and the evaluation's settings."""

    ckpt_path: str = MISSING
    output_dir: str | None = None
    run_config: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    threads: int | None = bounded(None, minimum=1)
    settings: EvaluationSettings = field(default_factory=EvaluationSettings)
