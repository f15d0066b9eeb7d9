"""Typed environment configs: dataclasses with defaults, built from keyword overrides with clear errors."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Union

from rlhub.errors import ConfigError


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if annotation is type(None):
        return value is None
    if origin is not None:  # list[int], dict[str, float], ...
        return isinstance(value, origin)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def build_config(cls: type, overrides: dict[str, Any], *, owner: str = "environment") -> Any:
    """Instantiate the dataclass ``cls`` from ``overrides``, checking names and types, then ``validate()``.

    Raises:
        ConfigError: naming the bad key and the valid ones, or the wrong type and the expected one.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ConfigError(f"{owner}: unknown config key(s) {unknown}; valid keys: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    for key, value in overrides.items():
        if not _type_ok(value, hints[key]):
            expected = getattr(hints[key], "__name__", str(hints[key]))
            raise ConfigError(f"{owner}: config key {key!r} must be {expected}, got {value!r}")
    config = cls(**overrides)
    validate = getattr(config, "validate", None)
    if callable(validate):
        validate()
    return config
