"""Structured-config schemas: a typo or a wrong type in any config fails at
composition, before anything is loaded or trained.

Each group's YAML files extend a schema stored here (`defaults:
[/schema/<group>@_here_]`); a model or dataset with extra options extends
the schema with a subclass.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_class
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf, open_dict

from mwvae.evaluation.likelihood import METHODS, draws_needed
from mwvae.evaluation.settings import EvaluationSettings
from mwvae.likelihoods import LIKELIHOODS


def _adam() -> dict[str, Any]:
    return {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3}


@dataclass
class ModelConfig:
    _target_: str = MISSING
    beta: float = 1.0
    kl_warmup_epochs: float = 0.0
    align_weight: float = 0.0
    optimizer: Any = field(default_factory=_adam)


@dataclass
class VAEConfig(ModelConfig):
    modality: str = "image"


@dataclass
class JointEncoderConfig(ModelConfig):
    feature_dim: int = 256
    joint_hidden_dims: list[int] = field(default_factory=lambda: [512])


@dataclass
class JMVAEConfig(JointEncoderConfig):
    alpha: float = 0.1


@dataclass
class PoEConfig(ModelConfig):
    subsample: bool = True
    num_random_subsets: int = 1


@dataclass
class FMWVAEConfig(ModelConfig):
    private_dim: int = 10
    shared_only: list[str] = field(default_factory=lambda: ["label"])
    style: str = "auto"
    style_modality: str = "label"
    decorrelation: str = "none"
    decorrelation_weight: float = 0.0


@dataclass
class ModalityConfig:
    encoder: Any = MISSING
    decoder: Any = MISSING
    likelihood: str = MISSING
    weight: float = 1.0


@dataclass
class DataConfig:
    _target_: str = MISSING
    modalities: dict[str, ModalityConfig] = MISSING
    batch_size: int = 128
    eval_batch_size: int = 1000
    seed: int | None = None
    on_device: bool = True
    paired_fraction: float = 1.0
    unpaired_keep: str = "random"


@dataclass
class SubsetConfig:
    """Keep the first N examples of a split (null: all of it)."""

    train: int | None = None
    val: int | None = None
    test: int | None = None


@dataclass
class MNISTConfig(DataConfig):
    data_dir: str = MISSING
    source: str = "offline"
    binarize: bool = False
    subset: SubsetConfig = field(default_factory=lambda: SubsetConfig())


@dataclass
class EmbeddingConfig:
    """The caption embedder: a transformers model, its pooling and length limit."""

    model: str = "all-MiniLM-L6-v2"
    pooling: str = "mean"
    max_length: int = 128
    batch_size: int = 256
    device: str = "cpu"


@dataclass
class COCOConfig(DataConfig):
    root: str = MISSING
    cache_dir: str = MISSING
    image_size: int = 32
    caption: str = "random"
    embedding: EmbeddingConfig = field(default_factory=lambda: EmbeddingConfig())
    embedding_dim: int = 384
    standardize: bool = True
    val_fraction: float = 0.05
    subset: SubsetConfig = field(default_factory=lambda: SubsetConfig())


@dataclass
class COCODemoConfig(COCOConfig):
    num_train: int = 4000
    num_val: int = 1000
    num_uncaptioned: int = 0


@dataclass
class LatentConfig:
    dim: int = MISSING


@dataclass
class PathsConfig:
    root_dir: str = MISSING
    data_dir: str = MISSING
    log_dir: str = MISSING
    output_dir: str = MISSING


@dataclass
class CompileConfig:
    """torch.compile of the model's encoders and decoders."""

    enabled: bool = False
    backend: str = "inductor"
    mode: str | None = None


@dataclass
class TrainConfig:
    model: Any = MISSING
    data: Any = MISSING
    latent: Any = MISSING
    trainer: Any = MISSING
    paths: Any = MISSING
    logger: Any = None
    callbacks: Any = None
    task_name: str = "train"
    seed: int | None = 42
    ckpt_path: str | None = None
    skip_finished: bool = True
    tags: list[str] = field(default_factory=list)
    optimized_metric: str = "val/loss"
    figures: bool = True
    evaluate: bool = True
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    threads: int | None = None
    compile: CompileConfig = field(default_factory=lambda: CompileConfig())


@dataclass
class EvalConfig:
    """`python -m mwvae.eval`: a checkpoint and the evaluation's settings."""

    ckpt_path: str = MISSING
    output_dir: str | None = None
    settings: EvaluationSettings = field(default_factory=EvaluationSettings)


def sqlite_url(path: str) -> str:
    """`${mwvae.sqlite:<path>}`: an SQLite URL for `path`, its folder created
    (SQLite cannot create folders, and the sweeper opens it before any job runs)."""
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def _hydra_config() -> DictConfig | None:
    return HydraConfig.get() if HydraConfig.initialized() else None


def _is_multirun(hydra_cfg: DictConfig) -> bool:
    return hydra_cfg.get("mode") == RunMode.MULTIRUN


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, as SLURM or taskset set it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def threads_per_job() -> int | None:
    """`${mwvae.threads_per_job:}`: torch threads for one job of a multirun whose
    jobs share the machine, so that together they do not oversubscribe its cores.

    The joblib launcher runs `n_jobs` jobs at once: each gets
    floor(cores / n_jobs) threads, at least 1 (`n_jobs: -1` is one job per
    core, as in joblib). A submitit launcher gives each task its
    `cpus_per_task` when that is set. Otherwise (a single run, the basic
    launcher) None: torch's default."""
    hydra_cfg = _hydra_config()
    if hydra_cfg is None or not _is_multirun(hydra_cfg):
        return None
    launcher = hydra_cfg.launcher
    target = str(launcher.get("_target_", ""))
    cores = available_cores()
    if target.endswith("JoblibLauncher"):
        n_jobs = int(launcher.n_jobs)
        if n_jobs < 0:  # joblib's -1: all cores, -2: all but one, ...
            n_jobs = max(cores + 1 + n_jobs, 1)
        return max(cores // max(n_jobs, 1), 1)
    if "hydra_submitit_launcher" in target and launcher.get("cpus_per_task"):
        return int(launcher.cpus_per_task)
    return None


def run_group() -> str:
    """`${mwvae.run_group:}`: the experiment's name if one is selected, else the
    sweep folder's name for the jobs of a multirun, else `single`."""
    hydra_cfg = _hydra_config()
    if hydra_cfg is None:
        return "single"
    experiment = hydra_cfg.runtime.choices.get("experiment")
    if experiment:
        return str(experiment)
    if _is_multirun(hydra_cfg):
        return Path(str(hydra_cfg.sweep.dir)).name
    return "single"


def job_suffix() -> str:
    """`${mwvae.job_suffix:}`: `-job<N>` in the N-th job of a multirun, else empty."""
    hydra_cfg = _hydra_config()
    if hydra_cfg is None or not _is_multirun(hydra_cfg):
        return ""
    return f"-job{hydra_cfg.job.num}"


def unique(*items: Any) -> list[Any]:
    """`${mwvae.unique:a,${some_list},...}`: the values and the lists' values,
    in order, without repeats or nulls (tags)."""
    out: list[Any] = []
    for item in items:
        for value in item if isinstance(item, list | tuple | ListConfig) else [item]:
            if value is not None and value not in out:
                out.append(value)
    return out


RESOLVERS = {
    "mwvae.threads_per_job": threads_per_job,
    "mwvae.run_group": run_group,
    "mwvae.job_suffix": job_suffix,
    "mwvae.unique": unique,
}


def register_configs() -> None:
    """Store the schemas in Hydra's ConfigStore and the resolvers (idempotent)."""
    if not OmegaConf.has_resolver("mwvae.sqlite"):
        OmegaConf.register_new_resolver("mwvae.sqlite", sqlite_url)
    for name, resolver in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    store.store(name="eval_schema", node=EvalConfig)
    store.store(group="schema", name="model", node=ModelConfig)
    store.store(group="schema", name="vae", node=VAEConfig)
    store.store(group="schema", name="joint_model", node=JointEncoderConfig)
    store.store(group="schema", name="jmvae", node=JMVAEConfig)
    store.store(group="schema", name="poe", node=PoEConfig)
    store.store(group="schema", name="fmw_vae", node=FMWVAEConfig)
    store.store(group="schema", name="data", node=DataConfig)
    store.store(group="schema", name="mnist", node=MNISTConfig)
    store.store(group="schema", name="coco", node=COCOConfig)
    store.store(group="schema", name="coco_demo", node=COCODemoConfig)
    store.store(group="schema", name="latent", node=LatentConfig)
    store.store(group="schema", name="paths", node=PathsConfig)


CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def compose_config(
    overrides: list[str] | tuple[str, ...] = (), config_name: str = "train"
) -> DictConfig:
    """The config `python -m mwvae.<config_name>` would run with, composed
    outside a Hydra run (tests, benchmarks, notebooks). Set
    `paths.output_dir`: there is no Hydra run folder here."""
    register_configs()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # lets ${hydra:...} interpolations resolve
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


class ConfigError(ValueError):
    """A config value that has the right type but cannot work."""


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {message}")


def _validate_evaluation(settings: DictConfig, num_modalities: int) -> None:
    likelihood = settings.likelihood
    _require(
        likelihood.method in METHODS,
        "evaluation.likelihood.method",
        f"{likelihood.method!r} is not one of {list(METHODS)}",
    )
    needed = draws_needed(num_modalities)
    _require(
        likelihood.num_samples == 0 or likelihood.k >= needed,
        "evaluation.likelihood.k",
        f"must be at least {needed} with {num_modalities} modalities (a draw from each "
        f"component of the importance proposal), got {likelihood.k}",
    )
    for key in ("num_samples", "batch_size"):
        _require(likelihood[key] >= 0, f"evaluation.likelihood.{key}", "must be >= 0")


def validate(cfg: DictConfig) -> None:
    """Checks of values that types alone cannot express, run before any data
    is loaded. Each message names the key and what it accepts."""
    _require(cfg.latent.dim > 0, "latent.dim", f"must be a positive integer, got {cfg.latent.dim}")
    _require(cfg.model.beta >= 0, "model.beta", f"must be >= 0, got {cfg.model.beta}")
    _require(
        cfg.model.align_weight >= 0,
        "model.align_weight",
        f"must be >= 0, got {cfg.model.align_weight}",
    )
    _require(
        cfg.model.kl_warmup_epochs >= 0,
        "model.kl_warmup_epochs",
        f"must be >= 0, got {cfg.model.kl_warmup_epochs}",
    )
    for key in ("batch_size", "eval_batch_size"):
        _require(
            cfg.data[key] > 0, f"data.{key}", f"must be a positive integer, got {cfg.data[key]}"
        )
    _require(len(cfg.data.modalities) > 0, "data.modalities", "declare at least one modality")
    threads = cfg.get("threads")
    _require(
        threads is None or threads > 0,
        "threads",
        f"must be a positive integer or null, got {threads}",
    )
    for name, spec in cfg.data.modalities.items():
        _require(
            spec.likelihood in LIKELIHOODS,
            f"data.modalities.{name}.likelihood",
            f"{spec.likelihood!r} is not one of {sorted(LIKELIHOODS)}",
        )
    _require(
        cfg.optimized_metric.startswith(("val/", "test/")),
        "optimized_metric",
        f"must name a val/ or test/ metric, got {cfg.optimized_metric!r}",
    )
    _validate_gradient_clipping(cfg.trainer)
    _validate_hidden_modalities(cfg)
    _validate_evaluation(cfg.evaluation, len(cfg.data.modalities))
    if cfg.compile.enabled:
        _validate_compile(cfg.compile)
    if "caption" in cfg.data:  # COCO
        _require(
            cfg.data.caption in ("first", "random", "all"),
            "data.caption",
            f"{cfg.data.caption!r} is not one of ['first', 'random', 'all']",
        )
        _require(
            cfg.data.embedding.pooling in ("mean", "cls"),
            "data.embedding.pooling",
            f"{cfg.data.embedding.pooling!r} is not one of ['cls', 'mean']",
        )
        _require(
            0 < cfg.data.val_fraction < 1,
            "data.val_fraction",
            f"must be between 0 and 1, got {cfg.data.val_fraction}",
        )


def _validate_hidden_modalities(cfg: DictConfig) -> None:
    from mwvae.data.missing import check_hiding  # the data package imports Lightning

    fraction = cfg.data.paired_fraction
    try:
        check_hiding(fraction, cfg.data.unpaired_keep, list(cfg.data.modalities))
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if fraction < 1:
        model_class = get_class(cfg.model._target_)
        _require(
            model_class.trains_on_incomplete_data,
            "data.paired_fraction",
            f"{model_class.__name__} cannot train on examples that miss modalities; set "
            "data.paired_fraction=1.0 or choose a model that can (mvae_poe, m_vae, mw_vae, "
            "fmw_vae, mmvae, mopoe, vae)",
        )


GRADIENT_CLIP_ALGORITHMS = ("norm", "value")


def _validate_gradient_clipping(trainer: DictConfig) -> None:
    value = trainer.get("gradient_clip_val")
    _require(
        value is None
        or (isinstance(value, int | float) and not isinstance(value, bool) and value >= 0),
        "trainer.gradient_clip_val",
        f"must be a number >= 0 or null (no clipping), got {value!r}",
    )
    algorithm = trainer.get("gradient_clip_algorithm")
    _require(
        algorithm is None or algorithm in GRADIENT_CLIP_ALGORITHMS,
        "trainer.gradient_clip_algorithm",
        f"{algorithm!r} is not one of {list(GRADIENT_CLIP_ALGORITHMS)}",
    )


def _validate_compile(options: DictConfig) -> None:
    import torch._dynamo  # slow to import: only when compiling

    backends = torch._dynamo.list_backends(exclude_tags=())  # the debugging ones included
    _require(
        options.backend in backends,
        "compile.backend",
        f"{options.backend!r} is not one of {backends}",
    )
    if options.mode is not None:
        modes = list(torch._inductor.list_mode_options())
        _require(
            options.backend == "inductor",
            "compile.mode",
            f"only the inductor backend takes a mode; set compile.mode=null for {options.backend}",
        )
        _require(options.mode in modes, "compile.mode", f"{options.mode!r} is not one of {modes}")
