"""What the configs offer: the models of `conf/model/`, the one list of them.

The Makefile, the experiments, the bench, the tests and the error messages
read the models from here (a new model is a YAML file there and the class it
names, nothing else).
"""

from __future__ import annotations

import argparse
from functools import cache
from pathlib import Path

from omegaconf import OmegaConf

CONF_DIR = Path(__file__).resolve().parents[3] / "conf"
MODEL_DIR = CONF_DIR / "model"


def model_names() -> list[str]:
    """Every model config, by name (`model=<name>`), sorted."""
    return sorted(path.stem for path in MODEL_DIR.glob("*.yaml"))


@cache
def model_target(name: str) -> str:
    """The `_target_` of a model config, following its defaults list to the
    config that names it (e.g. `m_vae` extends `mw_vae`)."""
    path = MODEL_DIR / f"{name}.yaml"
    if not path.exists():
        raise KeyError(f"model={name!r}: no such config; the models are {model_names()}")
    config = OmegaConf.load(path)
    if "_target_" in config:
        return str(config._target_)
    parents = [d for d in config.get("defaults", []) if isinstance(d, str) and d != "_self_"]
    if not parents:
        raise KeyError(f"{path} names no _target_ and extends no other model config")
    return model_target(parents[0])


def model_class(name: str) -> type:
    from hydra.utils import get_class  # imports the model's module (and Lightning)

    return get_class(model_target(name))


def models_that_train_on_incomplete_data() -> list[str]:
    """The multimodal models whose objective is defined for examples that miss
    modalities (the weak-supervision experiment sweeps them)."""
    classes = {name: model_class(name) for name in model_names()}
    return [
        name for name, cls in classes.items() if cls.trains_on_incomplete_data and not cls.unimodal
    ]


def multimodal_models() -> list[str]:
    """The models that read every modality of the data (all but VAE)."""
    return [name for name in model_names() if not model_class(name).unimodal]


SELECTIONS = {
    "all": model_names,
    "multimodal": multimodal_models,
    "incomplete_data": models_that_train_on_incomplete_data,
}


def models(selection: str = "all") -> str:
    """`${mwvae.models:<selection>}`: the selected model names, comma-joined
    (a sweep's value: `hydra.sweeper.params.model`)."""
    return ",".join(SELECTIONS[selection]())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print the model configs, comma-joined.")
    parser.add_argument("selection", nargs="?", default="all", choices=sorted(SELECTIONS))
    print(models(parser.parse_args(argv).selection))


if __name__ == "__main__":
    main()
