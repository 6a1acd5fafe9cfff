"""Components' option schemas without importing their classes.

A model's or a DataModule's `Options` dataclass lives beside its class, and
importing that module imports torch and Lightning (about 2 and 7 s on a
2-core machine). So that a typo or a wrong value fails in well under that,
every run that imports a component leaves a snapshot of its `Options` (the
fields' types, defaults and constraints, nested dataclasses included) in the
user's cache, keyed by a hash of the package's sources; the next run checks
its config against the snapshot before importing anything heavy, and the
full check (`mwvae.config.validation.validate`) follows once the classes
load. Only `mwvae`'s own components are snapshotted, and a schema the
snapshot cannot express exactly is not.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parents[1]
SCALARS = {t.__name__: t for t in (int, float, str, bool)}


class Unsupported(TypeError):
    """A schema whose types or defaults a snapshot cannot express."""


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "mwvae" / "options" / sources_hash()


@cache
def sources_hash() -> str:
    """Of every module of the package: a snapshot is only read by the code that wrote it."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE_DIR)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def path_of(target: str) -> Path | None:
    return cache_dir() / f"{target}.json" if target.startswith("mwvae.") else None


def save(target: str, owner: type) -> None:
    """Snapshot `owner.Options` for `target` (its `_target_`), if it is
    mwvae's, expressible, and not snapshotted yet; never fails the run."""
    path = path_of(target)
    if path is None or path.exists():
        return
    try:
        schema = describe(owner.Options)
        if describe(rebuild(schema)) != schema:
            return  # a check against it must never refuse what the class accepts
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}")
        partial.write_text(json.dumps({"owner": owner.__name__, "schema": schema}))
        partial.replace(path)  # atomic: concurrent jobs of a sweep read whole files
    except (Unsupported, OSError, TypeError, ValueError):
        return


def load(target: str) -> tuple[str, type] | None:
    """(the owner's class name, its rebuilt `Options`), or None: no snapshot."""
    path = path_of(target)
    try:
        snapshot = json.loads(path.read_text()) if path is not None else None
        return None if snapshot is None else (snapshot["owner"], rebuild(snapshot["schema"]))
    except (OSError, ValueError, KeyError, TypeError, Unsupported):
        return None  # missing or unreadable: the full check still runs


def describe(schema: type) -> dict[str, Any]:
    hints = typing.get_type_hints(schema)
    return {
        "name": schema.__qualname__,
        "module": schema.__module__,
        "fields": [
            {
                "name": f.name,
                "type": describe_type(hints[f.name]),
                "default": describe_default(f),
                "metadata": {k: list(v) if k == "choices" else v for k, v in f.metadata.items()},
            }
            for f in dataclasses.fields(schema)
        ],
    }


def describe_type(hint: Any) -> Any:
    if hint is Any:
        return "any"
    if hint is type(None):
        return "none"
    if isinstance(hint, type) and hint.__name__ in SCALARS and SCALARS[hint.__name__] is hint:
        return hint.__name__
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return {"dataclass": describe(hint)}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return {"union": [describe_type(a) for a in args]}
    if origin in (list, dict, tuple):
        return {origin.__name__: ["..." if a is Ellipsis else describe_type(a) for a in args]}
    raise Unsupported(f"type {hint!r}")


def describe_default(field: dataclasses.Field) -> dict[str, Any]:
    if field.default is not dataclasses.MISSING:
        return {"value": plain(field.default)}
    if field.default_factory is not dataclasses.MISSING:
        return {"factory": plain(field.default_factory())}
    return {}


def plain(value: Any) -> Any:
    """A default as JSON (a dataclass instance as its fields), or Unsupported."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    try:
        if json.loads(json.dumps(value)) == value:
            return value
    except (TypeError, ValueError):
        pass
    raise Unsupported(f"default {value!r}")


def rebuild(description: dict[str, Any]) -> type:
    fields = []
    for entry in description["fields"]:
        hint = rebuild_type(entry["type"])
        options: dict[str, Any] = {"metadata": entry["metadata"]}
        default = entry["default"]
        if "value" in default:
            options["default"] = default["value"]
        elif "factory" in default:
            options["default_factory"] = factory(hint, default["factory"])
        fields.append((entry["name"], hint, dataclasses.field(**options)))
    name = description["name"].rsplit(".")[-1]
    schema = dataclasses.make_dataclass(name, fields, kw_only=True)  # options are keywords
    schema.__module__, schema.__qualname__ = description["module"], description["name"]
    return schema


def rebuild_type(spec: Any) -> Any:
    if spec == "any":
        return Any
    if spec == "none":
        return type(None)
    if isinstance(spec, str):
        return SCALARS[spec]
    ((kind, inner),) = spec.items()
    if kind == "dataclass":
        return rebuild(inner)
    if kind == "union":
        return typing.Union[tuple(rebuild_type(a) for a in inner)]  # noqa: UP007
    origin = {"list": list, "dict": dict, "tuple": tuple}[kind]
    args = tuple(Ellipsis if a == "..." else rebuild_type(a) for a in inner)
    return origin[args] if args else origin


def factory(hint: Any, value: Any) -> Any:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return lambda: hint(**copy.deepcopy(value))
    return lambda: copy.deepcopy(value)  # a fresh copy each time


def save_all() -> list[str]:
    """Snapshot every model and dataset the configs offer (`make install`
    runs this, so that the first run's mistakes are quick too)."""
    from hydra.utils import get_class  # imports the classes: the slow part
    from omegaconf import OmegaConf

    from mwvae.config.catalog import CONF_DIR, model_names, model_target

    data = [str(OmegaConf.load(p)._target_) for p in sorted((CONF_DIR / "data").glob("*.yaml"))]
    targets = list(dict.fromkeys([model_target(name) for name in model_names()] + data))
    for target in targets:
        save(target, get_class(target))
    return [target for target in targets if (path_of(target) or Path()).is_file()]
