"""What a registry file may hold, as pydantic models: the ``envs:`` list and each entry in it.

:func:`validate_entry` checks one entry and turns the first problem into one line naming the file, the
entry and the field (``registry.yaml: entry 'countdown-v0': missing field 'domain'``).
"""

from __future__ import annotations

import re
import typing
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
    with_config,
)
from typing_extensions import Required, TypedDict

from rlhub.errors import RLHubError

Domain = Literal["math", "code", "tool", "instruction"]
DOMAINS = typing.get_args(Domain)
ID_RE = re.compile(r"^(?:[a-z0-9][a-z0-9_.-]*/)?[a-z0-9][a-z0-9_.-]*-v(\d+)$")
ENTRY_POINT_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@with_config(ConfigDict(extra="forbid", strict=True))
class DataSource(TypedDict, total=False):
    """An entry's ``data:`` mapping, for envs built on a public data set."""

    source: Required[str]
    """Where the data set comes from."""
    version: str
    """Which release of it."""
    shipped: str
    """The folder under ``data/`` holding rlhub's copy with its LICENSE; absent when rlhub ships none."""


class RegistryEntry(BaseModel):
    """One environment of a registry file."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    id: str
    """``name-vN``, lowercase (``namespace/name-vN`` inside a namespace)."""
    entry_point: str
    """The env class, ``package.module:Class``."""
    version: int
    """The N of the id: a changed prompt or reward is a new version."""
    domain: Domain
    description: str
    """One line."""
    license: str
    """The license of the env's data."""
    tags: list[str] = Field(default_factory=list)
    config: dict = Field(default_factory=dict)
    """The env's default config: ``rlhub.make(id, **overrides)`` starts from it."""
    data: DataSource | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_is_unset(cls, raw: Any) -> Any:
        # YAML reads `domain:` as None: a required field left empty is missing, and an optional one left
        # empty (None, "", [], {}) takes its default.
        if not isinstance(raw, dict):
            return raw
        fields = cls.model_fields

        def empty(key: Any, value: Any) -> bool:
            if key not in fields:
                return False  # an unknown field, reported as such
            return value in (None, "") if fields[key].is_required() else not value

        return {k: v for k, v in raw.items() if not empty(k, v)}

    @field_validator("description", "license", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> str:
        # YAML reads `license: 2024` as a number; the text written is what is meant.
        return str(value)

    @field_validator("id")
    @classmethod
    def _versioned_id(cls, value: str) -> str:
        if not ID_RE.match(value):
            raise ValueError(_EXPECTED["id"])
        return value

    @field_validator("entry_point")
    @classmethod
    def _module_attr(cls, value: str) -> str:
        if not ENTRY_POINT_RE.match(value):
            raise ValueError(f"{_EXPECTED['entry_point']}, got {value!r}")
        return value

    @field_validator("version")
    @classmethod
    def _version_of_id(cls, value: int, info: ValidationInfo) -> int:
        match = ID_RE.match(info.data.get("id", ""))
        if match and value != int(match.group(1)):
            raise ValueError(f"must be the integer in the id ({match.group(1)}), got {value!r}")
        return value


_EXPECTED = {
    "id": "must look like 'name-v0' (lowercase, versioned)",
    "entry_point": "must be 'package.module:Class'",
    "version": "must be the integer in the id",
    "domain": f"must be one of {list(DOMAINS)}",
    "tags": "must be a list of strings",
    "config": "must be a mapping of config keys to defaults",
}
"""What each field must be, for the errors pydantic finds before an entry's own checks run."""


class RegistryFile(BaseModel):
    """A registry file: its entries under ``envs:``; other top-level keys are ignored (with a warning)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    envs: list[Any]
    """The entries, each checked on its own by :func:`validate_entry` so that its error names it."""


def validate_entry(raw: Any, where: str) -> RegistryEntry:
    """Check one entry of the registry file ``where``.

    Args:
        raw: The entry as read from YAML (or given by an env package).
        where: The file or entry point it comes from, for the error.

    Returns:
        The valid entry.

    Raises:
        RLHubError: One line naming the file, the entry and the field, and what the field must be.
    """
    try:
        return RegistryEntry.model_validate(raw)
    except ValidationError as exc:
        raise RLHubError(_error_line(exc, raw, where)) from None


def _error_line(exc: ValidationError, raw: Any, where: str) -> str:
    """The first problem as one line: a missing field, else every unknown one, else the first bad value."""
    fields = list(RegistryEntry.model_fields)
    required = [name for name, f in RegistryEntry.model_fields.items() if f.is_required()]
    if not isinstance(raw, dict):
        return f"{where}: each entry must be a mapping with {required}, got {type(raw).__name__}"
    label = f"{where}: entry {raw.get('id', '<missing id>')!r}"
    errors = exc.errors()
    missing = [e["loc"][0] for e in errors if e["type"] == "missing" and len(e["loc"]) == 1]
    if missing:
        return f"{label}: missing field {missing[0]!r}"
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden" and len(e["loc"]) == 1)
    if unknown:
        return f"{label}: unknown field(s) {unknown}; allowed: {fields}"
    error = errors[0]
    key = error["loc"][0]
    if key == "data":
        if error["type"] == "string_type" and len(error["loc"]) == 2:
            return f"{label}: field 'data' values must be strings, got {raw['data']!r}"
        return (
            f"{label}: field 'data' must be a mapping with 'source' and optionally 'version' and 'shipped', "
            f"got {raw['data']!r}"
        )
    if error["type"] == "value_error":
        return f"{label}: field {key!r} {error['msg'].removeprefix('Value error, ')}"
    expected = _EXPECTED[key]
    if key == "version" and (match := ID_RE.match(str(raw.get("id")))):
        expected += f" ({match.group(1)})"
    return f"{label}: field {key!r} {expected}, got {raw[key]!r}"
