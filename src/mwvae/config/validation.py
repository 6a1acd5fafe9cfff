"""The one check of a config, before any data, logger or W&B run is touched.

1. `complete`: the model's and the data's options are merged into their
   class's `Options` dataclass (defaults filled in, types converted, unknown
   keys refused); 2. every field constraint of the schemas (`mwvae.options`);
   3. the components' own cross-field checks (`parse_options`); 4. the
   arguments of the trainer and the optimizer against their signatures;
   5. what relates the components to each other. Each message starts with
   the key. `precheck` runs 1 and 2 before any component's class is
   imported, against the snapshots of their `Options` (`mwvae.config.snapshots`).
"""

from __future__ import annotations

import copy
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from hydra.utils import get_class, get_method
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from mwvae.config import snapshots
from mwvae.config.schema import EvalConfig, TrainConfig
from mwvae.options import OptionError, check, parse, unknown_message

COMPONENTS = ("model", "data")  # the config nodes whose `_target_` declares their Options


class ConfigError(ValueError):
    """A config value that cannot work; the message starts with its key."""


def component_class(cfg: DictConfig, key: str) -> type:
    target = cfg[key].get("_target_")
    try:
        return get_class(target)
    except Exception as error:  # Hydra wraps the import's own error
        raise ConfigError(f"{key}._target_: cannot import {target!r} ({error})") from None


def named_options(owner: type) -> tuple[str, type]:
    return owner.__name__, owner.Options


def class_options(cfg: DictConfig, key: str) -> tuple[str, type]:
    """The name and the `Options` of the class `cfg[key]` names (imported)."""
    return named_options(component_class(cfg, key))


def complete(
    cfg: DictConfig,
    components: tuple[str, ...] = COMPONENTS,
    options_of: Callable[[DictConfig, str], tuple[str, type]] = class_options,
) -> None:
    """Replace `cfg.model` and `cfg.data` (the `components`) by their options
    with every default filled in from their `Options` (`options_of`: the
    class's; interpolations kept), in place."""
    for key in components:
        owner, schema = options_of(cfg, key)
        values = {k: v for k, v in cfg[key].items_ex(resolve=False) if k != "_target_"}
        try:
            merged = OmegaConf.merge(OmegaConf.structured(schema), values)
        except ConfigKeyError as error:
            unknown = str(error.key).split(".")[0]
            raise ConfigError(unknown_message(key, unknown, owner, schema)) from None
        except ValidationError as error:
            reason = str(error.msg).splitlines()[0]  # without OmegaConf's key and type lines
            raise ConfigError(f"{key}.{error.full_key}: {reason}") from None
        plain = OmegaConf.to_container(merged, resolve=False)
        cfg[key] = OmegaConf.create({"_target_": cfg[key]._target_, **plain})


def precheck(cfg: DictConfig) -> None:
    """The checks of `validate` that need no class: the config's schema, and
    the options of each component with a snapshot (`mwvae.config.snapshots`)
    against it; `cfg` is left as it is. Raise ConfigError naming the key."""
    cfg = copy.deepcopy(cfg)
    found = {key: snapshots.load(cfg[key].get("_target_", "")) for key in COMPONENTS}
    found = {key: options for key, options in found.items() if options is not None}
    complete(cfg, tuple(found), lambda _, key: found[key])
    try:
        check(TrainConfig, cfg, "")
        for key, (owner, schema) in found.items():
            parse(schema, without_target(cfg[key]), key, owner)
    except OptionError as error:
        raise ConfigError(str(error)) from None


def validate(cfg: DictConfig) -> None:
    """Every check of a training config; raise ConfigError naming the key."""
    classes = {key: component_class(cfg, key) for key in COMPONENTS}
    for key, owner in classes.items():  # first: the next run's precheck sees this run's mistakes
        snapshots.save(cfg[key]._target_, owner)
    complete(cfg, options_of=lambda _, key: named_options(classes[key]))
    try:
        check(TrainConfig, cfg, "")
        modalities = resolved(cfg.data.modalities)
        classes["model"].parse_options(without_target(cfg.model), "model", modalities=modalities)
        classes["data"].parse_options(without_target(cfg.data), "data")
    except OptionError as error:
        raise ConfigError(str(error)) from None
    check_arguments(get_class(cfg.trainer._target_), resolved(cfg.trainer), "trainer")
    check_arguments(get_method(cfg.optimizer._target_), resolved(cfg.optimizer), "optimizer")
    check_relations(cfg)


def validate_eval(cfg: DictConfig) -> None:
    """The checks of an evaluation config (`python -m mwvae.eval`)."""
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise ConfigError("ckpt_path: missing; name the checkpoint to evaluate, ckpt_path=PATH")
    try:
        check(EvalConfig, cfg, "")
    except OptionError as error:
        raise ConfigError(str(error)) from None


def validate_data(cfg: DictConfig) -> None:
    """The checks of `cfg.data` alone (an evaluation's data, its run's with
    the command line's overrides), its defaults filled in, in place."""
    complete(cfg, ("data",))
    try:
        component_class(cfg, "data").parse_options(without_target(cfg.data), "data")
    except OptionError as error:
        raise ConfigError(str(error)) from None


def resolved(node: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(node, resolve=True)


def without_target(node: DictConfig) -> dict[str, Any]:
    return {k: v for k, v in resolved(node).items() if k != "_target_"}


def require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {message}")


def check_relations(cfg: DictConfig) -> None:
    """Constraints between components."""
    from pytorch_lightning.utilities.enums import GradClipAlgorithmType

    from mwvae.config.catalog import models_that_train_on_incomplete_data
    from mwvae.evaluation.likelihood import draws_needed

    require(
        cfg.optimized_metric.startswith(("val/", "test/")),
        "optimized_metric",
        f"must name a val/ or test/ metric, got {cfg.optimized_metric!r}",
    )
    model_class = component_class(cfg, "model")
    if cfg.data.paired_fraction < 1 and not model_class.trains_on_incomplete_data:
        raise ConfigError(
            f"data.paired_fraction: {model_class.__name__} cannot train on examples that "
            "miss modalities; set data.paired_fraction=1.0 or choose a model that can ("
            + ", ".join(models_that_train_on_incomplete_data())
            + ")"
        )
    likelihood = cfg.evaluation.likelihood
    needed = draws_needed(len(cfg.data.modalities))
    require(
        likelihood.num_samples == 0 or likelihood.k >= needed,
        "evaluation.likelihood.k",
        f"must be at least {needed} with {len(cfg.data.modalities)} modalities (a draw from "
        f"each component of the importance proposal), got {likelihood.k}",
    )
    clip = cfg.trainer.get("gradient_clip_val")
    require(
        clip is None or clip >= 0,
        "trainer.gradient_clip_val",
        f"must be >= 0 or null (no clipping), got {clip}",
    )
    algorithms = [a.value for a in GradClipAlgorithmType]  # Lightning's own list
    algorithm = cfg.trainer.get("gradient_clip_algorithm")
    require(
        algorithm is None or algorithm in algorithms,
        "trainer.gradient_clip_algorithm",
        f"{algorithm!r} is not one of {algorithms}",
    )
    if cfg.compile.enabled:
        check_compile(cfg.compile)


def check_compile(options: DictConfig) -> None:
    import torch._dynamo  # slow to import: only when compiling

    backends = torch._dynamo.list_backends(exclude_tags=())  # the debugging ones included
    require(
        options.backend in backends,
        "compile.backend",
        f"{options.backend!r} is not one of {backends}",
    )
    if options.mode is not None:
        modes = list(torch._inductor.list_mode_options())
        require(
            options.backend == "inductor",
            "compile.mode",
            f"only the inductor backend takes a mode; set compile.mode=null for {options.backend}",
        )
        require(options.mode in modes, "compile.mode", f"{options.mode!r} is not one of {modes}")


# ---------------------------------------------------------------- signatures
def check_arguments(target: Callable, values: Mapping[str, Any], prefix: str) -> None:
    """The arguments of a config node against the signature of what it
    instantiates (Lightning's Trainer, a torch optimizer): a key it does not
    take, or a value of a type its annotation excludes, fails here instead of
    deep inside the run. Annotations this cannot judge (classes) pass."""
    parameters = inspect.signature(target).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    hints = type_hints(target)
    for key, value in values.items():
        if key.startswith("_"):  # Hydra's _target_, _partial_
            continue
        if key not in parameters:
            require(takes_any, f"{prefix}.{key}", f"{name_of(target)} takes no argument {key!r}")
            continue
        hint = hints.get(key)
        instantiated = isinstance(value, dict) and "_target_" in value  # Hydra builds it first
        require(
            hint is None or instantiated or matches(value, hint),
            f"{prefix}.{key}",
            f"{name_of(target)} expects {describe(hint)}, got {value!r}",
        )


def name_of(target: Callable) -> str:
    return f"{target.__module__}.{target.__qualname__}"


def type_hints(target: Callable) -> dict[str, Any]:
    function = target.__init__ if inspect.isclass(target) else target
    try:
        return typing.get_type_hints(function)
    except Exception:  # forward references it cannot resolve: judge none
        return {}


def matches(value: Any, hint: Any) -> bool:
    """Whether a config value (None, bool, int, float, str, list, dict) can be `hint`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, arg) for arg in args)
    if origin is typing.Literal:
        return value in args
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple) or hint in (list, tuple):
        return isinstance(value, list | tuple)
    if origin in (dict, Mapping) or hint is dict:
        return isinstance(value, dict)
    if isinstance(hint, type):  # a class: a config value is one only if it is an instance
        return isinstance(value, hint)
    return True  # a TypeVar, a forward reference: not something to judge a value by


def describe(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(describe(arg) for arg in typing.get_args(hint))
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    return getattr(hint, "__name__", str(hint))
