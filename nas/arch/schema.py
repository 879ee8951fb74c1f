"""Strict parsing of plain data (JSON, TOML) into frozen dataclasses, with field-naming errors."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal


class SchemaError(ValueError):
    """Plain data that does not fit a dataclass; the message names the field and what is allowed."""


def parse(value: Any, annotation: Any, where: str, error: type[ValueError] = SchemaError) -> Any:
    """Check `value` against a type annotation and build it; only plain data gets through."""
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        return parse_dataclass(value, annotation, where, error)
    if origin is Literal:
        allowed = typing.get_args(annotation)
        if value not in allowed or type(value) is not type(allowed[0]):
            choices = ", ".join(map(str, allowed))
            raise error(f"{where}: {value!r} is not one of {choices}")
        return value
    if origin in (typing.Union, types.UnionType):
        return _parse_union(value, typing.get_args(annotation), where, error)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise error(f"{where}: expected a list, got {type(value).__name__}")
        item = typing.get_args(annotation)[0]
        # items may name themselves (stages are "stage s1", "stage s2", ... everywhere)
        label = getattr(item, "LABEL", None)
        return tuple(
            parse(v, item, label.format(i + 1) if label else f"{where}[{i}]", error)
            for i, v in enumerate(value)
        )
    return parse_scalar(value, annotation, where, error)


def _parse_union(value: Any, options: tuple, where: str, error: type[ValueError]) -> Any:
    """The first alternative that accepts the value; else one error listing them all."""
    if value is None and type(None) in options:
        return None
    inner = [a for a in options if a is not type(None)]
    for option in inner:
        try:
            return parse(value, option, where, error)
        except error:
            if len(inner) == 1:
                raise
    names = " or ".join(_type_name(a) for a in options)
    raise error(f"{where}: expected {names}, got {value!r}")


def _type_name(annotation: Any) -> str:
    """A readable name for a type annotation."""
    if annotation is type(None):
        return "none"
    if typing.get_origin(annotation) is tuple:
        return f"a list of {_type_name(typing.get_args(annotation)[0])}"
    if typing.get_origin(annotation) is Literal:
        return " or ".join(repr(a) for a in typing.get_args(annotation))
    return getattr(annotation, "__name__", str(annotation))


def parse_scalar(value: Any, annotation: Any, where: str, error: type[ValueError]) -> Any:
    """int / float / bool / str, strictly (no bools for numbers, no numbers for strings)."""
    if annotation is bool and isinstance(value, bool):
        return value
    if annotation is str and isinstance(value, str):
        return value
    if annotation is Path and isinstance(value, str | Path):
        return Path(value)
    if annotation is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if annotation is float and isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise error(f"{where}: {value!r} is not a finite number")
        return float(value)
    raise error(f"{where}: expected {_type_name(annotation)}, got {value!r}")


def parse_dataclass(value: Any, cls: type, where: str, error: type[ValueError]) -> Any:
    """Build dataclass `cls` from a dict with only known keys (missing ones take defaults)."""
    if not isinstance(value, dict):
        raise error(f"{where}: expected a table/object, got {type(value).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise error(f"{where}: unknown field {unknown[0]!r} (allowed: {', '.join(names)})")
    kwargs = {k: parse(v, hints[k], f"{where}.{k}", error) for k, v in value.items()}
    try:
        return cls(**kwargs)
    except TypeError as err:  # a required field is missing
        raise error(f"{where}: {err}") from None
