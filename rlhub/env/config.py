"""Typed environment configs: dataclasses with defaults, built from keyword overrides that pydantic checks.

An env declares its config as a plain dataclass (``envs/*.py``); :func:`build_config` checks the overrides
against the dataclass's field types with pydantic in strict mode (no coercion: ``"2"`` is no int, ``True`` is
no int, an int passes as a float) and turns the first problem into one line naming the env, the key and the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from functools import cache
from typing import Any, Union

from pydantic import ConfigDict, InstanceOf, StrictInt, TypeAdapter, ValidationError, with_config
from typing_extensions import Required, TypedDict

from rlhub.errors import ConfigError

_NUMBER = StrictInt | InstanceOf[float]
"""What a float field takes: an int or a float. pydantic's strict float also takes any object with ``__float__``
(``Decimal``, numpy scalars, ``numpy.bool_``), which would reach the dataclass unconverted."""


@cache
def _overrides_adapter(cls: type) -> TypeAdapter:
    """A pydantic validator of ``cls``'s overrides: a TypedDict of its init fields, those without default required."""
    hints = {name: _checked_type(hint) for name, hint in typing.get_type_hints(cls).items()}
    fields = {
        f.name: hints[f.name] if _has_default(f) else Required[hints[f.name]] for f in dataclasses.fields(cls) if f.init
    }
    overrides = TypedDict(f"{cls.__name__}Overrides", fields, total=False)
    return TypeAdapter(with_config(ConfigDict(extra="forbid", strict=True))(overrides))


def _checked_type(annotation: Any) -> Any:
    """``annotation`` with each float, alone or in a union, as :data:`_NUMBER`."""
    if annotation is float:
        return _NUMBER
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return Union[tuple(_checked_type(arg) for arg in typing.get_args(annotation))]  # noqa: UP007 (built, not written)
    return annotation


def _has_default(f: dataclasses.Field) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def _type_name(annotation: Any) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")


def _error_line(exc: ValidationError, cls: type, overrides: dict[str, Any], owner: str) -> str:
    """The first problem of ``exc`` as one line: every unknown key first, else the first missing or mistyped one."""
    valid = sorted(f.name for f in dataclasses.fields(cls) if f.init)
    errors = exc.errors()
    unknown = [e["loc"][0] for e in errors if e["type"] in ("extra_forbidden", "invalid_key")]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), valid, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{owner}: unknown config key(s) {sorted(unknown, key=str)}; valid keys: {valid}{hint}"
    key = errors[0]["loc"][0]
    if errors[0]["type"] == "missing":
        return f"{owner}: config key {key!r} has no default; pass {key}=..."
    expected = _type_name(typing.get_type_hints(cls)[key])
    return f"{owner}: config key {key!r} must be {expected}, got {overrides[key]!r}"


def build_config(cls: type, overrides: dict[str, Any], *, owner: str = "environment") -> Any:
    """Instantiate the dataclass ``cls`` from ``overrides``, checking names and types, then ``validate()``.

    The values reach the dataclass as given (an int for a float field stays an int).

    Args:
        cls: The config dataclass.
        overrides: Field values by name; the other fields keep their defaults.
        owner: Who the config belongs to, for the error message (the env class).

    Returns:
        The config instance, after its ``validate()`` (where it has one) passed.

    Raises:
        ConfigError: naming ``owner`` and the bad key and the valid ones, the wrong type and the expected one, or
            what the config's own ``validate()`` refused.
    """
    try:
        _overrides_adapter(cls).validate_python(overrides)
    except ValidationError as exc:
        raise ConfigError(_error_line(exc, cls, overrides, owner)) from None
    config = cls(**overrides)
    validate = getattr(config, "validate", None)
    if callable(validate):
        try:
            validate()
        except ConfigError as exc:  # the env's own check: name the env, as the key checks above do
            message = str(exc)
            raise ConfigError(message if message.startswith(f"{owner}:") else f"{owner}: {message}") from None
    return config
