"""How a component declares its options: one dataclass beside its code.

A model or a DataModule has a nested dataclass `Options`: each field is an
option, its default the only default, and its constraints (the choices it
takes, its bounds) stated once, as field metadata, by `choice` and
`bounded`. The same dataclass is the config's schema (`mwvae.config`
completes and type-checks `model.*` and `data.*` against it before anything
is loaded) and the constructor's: `parse` reads keyword arguments into it.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from omegaconf import MISSING


class OptionError(ValueError):
    """An option with a value its schema does not accept; the message starts with its key."""


def choice(choices: Iterable[str], default: Any = dataclasses.MISSING) -> Any:
    """A field that takes one of `choices` (a module's constant, never restated)."""
    choices = tuple(choices)
    assert default is dataclasses.MISSING or default in choices, (default, choices)
    return dataclasses.field(default=default, metadata={"choices": choices})


def bounded(
    default: Any = dataclasses.MISSING,
    *,
    minimum: float | None = None,
    above: float | None = None,
    maximum: float | None = None,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A numeric field within bounds (`minimum <= x`, `above < x`, `x <= maximum`;
    None: unbounded); a null value is not checked."""
    bounds = {"minimum": minimum, "above": above, "maximum": maximum}
    return dataclasses.field(
        default=default,
        default_factory=default_factory,
        metadata={k: v for k, v in bounds.items() if v is not None},
    )


def field_error(field: dataclasses.Field, value: Any) -> str | None:
    """What is wrong with `value` for `field`, None if nothing."""
    meta = field.metadata
    if "choices" in meta and value not in meta["choices"]:
        return f"{value!r} is not one of {list(meta['choices'])}"
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if "minimum" in meta and value < meta["minimum"]:
        return f"must be >= {meta['minimum']}, got {value}"
    if "above" in meta and value <= meta["above"]:
        return f"must be > {meta['above']}, got {value}"
    if "maximum" in meta and value > meta["maximum"]:
        return f"must be <= {meta['maximum']}, got {value}"
    return None


def nested_schemas(schema: type) -> dict[str, tuple[type, bool]]:
    """The fields of `schema` that hold dataclasses: name -> (that dataclass,
    whether the field is a `dict[str, <dataclass>]` of them)."""
    found = {}
    for name, hint in typing.get_type_hints(schema).items():
        item = typing.get_args(hint)[-1] if typing.get_origin(hint) is dict else None
        if _is_dataclass(hint) or _is_dataclass(item):
            found[name] = (hint, False) if _is_dataclass(hint) else (item, True)
    return found


def check(schema: type, values: Mapping[str, Any], prefix: str) -> None:
    """Check `values` against the constraints of `schema`'s fields, recursing
    into nested dataclasses; raise OptionError naming `prefix.<key>`."""
    nested = nested_schemas(schema)
    for field in dataclasses.fields(schema):
        if field.name not in values:
            continue
        value = values[field.name]
        key = f"{prefix}.{field.name}" if prefix else field.name
        if field.name in nested:
            inner, many = nested[field.name]
            if isinstance(value, Mapping):
                for name, entry in value.items() if many else [(None, value)]:
                    check(inner, entry, key if name is None else f"{key}.{name}")
            continue
        if (error := field_error(field, value)) is not None:
            raise OptionError(f"{key}: {error}")


def _is_dataclass(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def names(schema: type) -> list[str]:
    return [f.name for f in dataclasses.fields(schema)]


def parse(schema: type, values: Mapping[str, Any], prefix: str, owner: str) -> Any:
    """`schema(**values)`, checked: an unknown key, a bad value or a required
    one (`???`) left unset raises OptionError naming the key and, for an
    unknown one, the options `owner` has."""
    unknown = sorted(set(values) - set(names(schema)))
    if unknown:
        raise OptionError(unknown_message(prefix, unknown[0], owner, schema))
    check(schema, values, prefix)
    options = schema(**values)
    unset = [f.name for f in dataclasses.fields(options) if getattr(options, f.name) == MISSING]
    if unset:
        raise OptionError(f"{prefix}.{unset[0]}: {owner} needs a value")
    return options


def read_nested(options: Any, prefix: str) -> Any:
    """`options` with the mappings of its nested dataclass fields read into
    their dataclasses, also the values of a `dict[str, <dataclass>]`."""
    for name, (inner, many) in nested_schemas(type(options)).items():
        value, key = getattr(options, name), f"{prefix}.{name}"
        if many and isinstance(value, Mapping):
            value = {k: read_dataclass(inner, v, f"{key}.{k}") for k, v in value.items()}
        elif not many:
            value = read_dataclass(inner, value, key)
        setattr(options, name, value)
    return options


def read_dataclass(schema: type, value: Any, key: str) -> Any:
    """A nested option's mapping as its dataclass (anything else as it is)."""
    if not isinstance(value, Mapping):
        return value
    unknown = sorted(set(value) - set(names(schema)))
    if unknown:
        raise OptionError(f"{key}.{unknown[0]}: no such option; {key} has {names(schema)}")
    missing = [
        f.name
        for f in dataclasses.fields(schema)
        if f.name not in value
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise OptionError(f"{key}.{missing[0]}: needs a value")
    return schema(**value)


def unknown_message(prefix: str, key: str, owner: str, schema: type) -> str:
    return (
        f"{prefix}.{key}: {owner} has no option {key!r}; its options are {names(schema)} "
        f"(declared in {owner}.Options, {schema.__module__})"
    )


class Configurable:
    """A component whose options are its nested dataclass `Options`.

    `parse_options` is the one check of a component's options, run by its
    constructor and, before anything is built, by the config's validation:
    unknown keys, the fields' constraints, then `check_options` for what
    relates several fields (or the component to its context)."""

    Options: typing.ClassVar[type]

    @classmethod
    def parse_options(cls, values: Mapping[str, Any], prefix: str, **context: Any) -> Any:
        options = parse(cls.Options, values, prefix, cls.__name__)
        cls.check_options(options, prefix, **context)
        return read_nested(options, prefix)  # after: a wrong modality name comes first

    @classmethod
    def check_options(cls, options: Any, prefix: str, **context: Any) -> None:
        """Constraints across fields; raise OptionError naming the key (none here)."""
