"""One config mechanism (issue 29): env configs and registry entries are checked by pydantic.

The move from hand-written checks kept what is accepted and what is refused. The tables below were recorded by
running the checks of the commit before it on the same probes; the few changes are tests of their own at the end.
"""

from __future__ import annotations

import dataclasses
import typing
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
import yaml

from rlhub.env.config import build_config
from rlhub.env.registry import default_registry_path, parse_entry, parse_registry
from rlhub.errors import ConfigError, RLHubError
from rlhub.resolve import resolve

PROBES = (0, 1, 3, -1, 100, True, False, 0.5, 2.0, "2", "x", "", "tags", "boxed", "user", "template", None)
PROBES += ([], ["a"], [1], [["a"]], ["simple_python"], ("a",), {}, {"a": 1}, {1: 1}, b"x")

TYPE_ACCEPTS = {
    int: {"0", "1", "3", "-1", "100"},
    float: {"0", "1", "3", "-1", "100", "0.5", "2.0"},
    bool: {"True", "False"},
    str: {"'2'", "'x'", "''", "'tags'", "'boxed'", "'user'", "'template'"},
    str | None: {"'2'", "'x'", "''", "'tags'", "'boxed'", "'user'", "'template'", "None"},
    list[str]: {"[]", "['a']", "['simple_python']"},  # and, before, any list: see test_list_items_are_checked
    dict[str, Any]: {"{}", "{'a': 1}"},  # and, before, {1: 1}: see test_mapping_keys_are_checked
}
"""The probes a config field of each annotation accepts (as ``repr``), before the config's own ``validate()``;
every annotation of a shipped env config is here. No coercion: ``True`` is no int, ``"2"`` no number."""

TEMPLATES = ("math_env", "math_multiturn", "code_env", "code_multiturn", "tool_env", "tool_multiturn")


def _shipped_envs() -> dict[str, tuple[type, dict]]:
    """Every env class rlhub ships with the defaults its registry entry gives, and the scaffold templates."""
    entries = yaml.safe_load(default_registry_path().read_text(encoding="utf-8"))["envs"]
    envs = {e["id"]: (resolve(e["entry_point"], what=e["id"]), e.get("config") or {}) for e in entries}
    for name in TEMPLATES:
        envs[f"template {name}"] = (resolve(f"rlhub.authoring.templates.{name}:ScaffoldNameEnv", what=name), {})
    try:
        import reasoning_gym  # noqa: F401

        envs["rg/leg_counting-v2"] = (
            resolve("rlhub.envs.reasoning_gym:ReasoningGymEnv", what="rg"),
            {"task": "leg_counting"},
        )
    except ImportError:
        pass
    return envs


SHIPPED = _shipped_envs()


def _validates(config_cls: type, overrides: dict) -> bool:
    try:
        config_cls(**overrides).validate()
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("env_id", sorted(SHIPPED))
def test_every_env_config_field_accepts_what_it_did(env_id):
    env_cls, defaults = SHIPPED[env_id]
    hints = typing.get_type_hints(env_cls.Config)
    assert _validates(env_cls.Config, defaults)
    build_config(env_cls.Config, dict(defaults), owner=env_cls.__name__)  # the registry's defaults pass
    for field in dataclasses.fields(env_cls.Config):
        for value in PROBES:
            overrides = {**defaults, field.name: value}
            typed = repr(value) in TYPE_ACCEPTS[hints[field.name]]
            expected = typed and _validates(env_cls.Config, overrides)
            try:
                config = build_config(env_cls.Config, overrides, owner=env_cls.__name__)
            except ConfigError as exc:
                assert not expected, f"{field.name}={value!r} refused: {exc}"
                message = str(exc)
                assert "\n" not in message, message
                if not typed:  # the type check's own message; validate()'s are the env's
                    assert message.startswith(f"{env_cls.__name__}: config key {field.name!r} must be "), message
                continue
            assert expected, f"{field.name}={value!r} accepted"
            direct = env_cls.Config(**overrides)
            direct.validate()
            assert repr(config) == repr(direct)  # the values arrive as given: an int for a float stays an int


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"dificulty": 2}, r"^ArithmeticEnv: unknown config key\(s\) \['dificulty'\]; valid keys: \[.*'difficulty'"),
        ({"zz": 1, "aa": 2}, r"unknown config key\(s\) \['aa', 'zz'\]; valid keys: "),
        ({"zz": 1, "few_shot": "x"}, r"unknown config key\(s\) \['zz'\]"),
        ({"difficulty": True}, r"^ArithmeticEnv: config key 'difficulty' must be int, got True$"),
        ({"format_weight": "0.5"}, r"config key 'format_weight' must be float, got '0.5'$"),
        ({"system_prompt": 3}, r"config key 'system_prompt' must be str \| None, got 3$"),
        ({"difficulty": None}, r"config key 'difficulty' must be int, got None$"),
        ({"format_weight": Decimal("0.5")}, r"config key 'format_weight' must be float, got Decimal\('0.5'\)$"),
        ({"format_weight": Fraction(1, 2)}, r"config key 'format_weight' must be float, got Fraction\(1, 2\)$"),
    ],
)
def test_a_bad_override_is_one_line_naming_the_key_and_the_fix(overrides, message):
    env_cls, _ = SHIPPED["arithmetic-v1"]
    with pytest.raises(ConfigError, match=message):
        build_config(env_cls.Config, overrides, owner=env_cls.__name__)


def test_a_misspelt_key_names_the_likely_one():
    env_cls, _ = SHIPPED["arithmetic-v1"]
    with pytest.raises(ConfigError, match=r"valid keys: \[.*\] \(did you mean 'difficulty'\?\)$"):
        build_config(env_cls.Config, {"dificulty": 2}, owner=env_cls.__name__)


BASE_ENTRY = {
    "id": "arithmetic-v1",
    "entry_point": "rlhub.envs.arithmetic:ArithmeticEnv",
    "version": 1,
    "domain": "math",
    "description": "d",
    "license": "MIT",
    "tags": ["a"],
    "config": {"difficulty": 2},
    "data": {"source": "s", "version": "1", "shipped": "x"},
}
DATA_PROBES = ({"source": "s"}, {"version": "1"}, {"source": "s", "url": "u"}, {"source": "s", "version": 3})
DATA_PROBES += ({"source": "s", "version": None}, {1: "s", "source": "s"})
ENTRY_PROBES = (*PROBES, "arithmetic-v0", "ns/foo-v1", "Foo-v1", "foo", "foo-v01", "a.b:C", "a.b.C", "a:C()")
ENTRY_PROBES += ("code", "poetry", ["a", 1], 1.0, "1", *DATA_PROBES)
EMPTY = {"0", "False", "''", "None", "[]", "{}"}
"""What an optional field left empty reads as: its default (YAML's ``tags:`` is None)."""
ENTRY_ACCEPTS = {
    "id": {"'ns/foo-v1'", "'foo-v01'"},
    "entry_point": {"'a.b:C'"},
    "version": {"1"},  # and, before, True: see test_a_bool_is_no_version
    "domain": {"'code'"},
    "description": {repr(p) for p in ENTRY_PROBES} - {"None", "''"},  # any value, as its text
    "license": {repr(p) for p in ENTRY_PROBES} - {"None", "''"},
    "tags": EMPTY | {"['a']", "['simple_python']"},
    "config": EMPTY | {"{'a': 1}", "{1: 1}"} | {repr(p) for p in DATA_PROBES},
    "data": EMPTY | {"{'source': 's'}"},
}
"""The probes each field of a registry entry accepts (as ``repr``), the other fields as in ``BASE_ENTRY``."""


@pytest.mark.parametrize("field", list(ENTRY_ACCEPTS))
def test_every_registry_field_accepts_what_it_did(field):
    for value in ENTRY_PROBES:
        try:
            spec = parse_entry({**BASE_ENTRY, field: value}, "reg.yaml", "rlhub")
        except RLHubError as exc:
            assert repr(value) not in ENTRY_ACCEPTS[field], f"{field}={value!r} refused: {exc}"
            message = str(exc)
            assert "\n" not in message and message.startswith("reg.yaml: entry ") and " field " in message
            continue
        assert repr(value) in ENTRY_ACCEPTS[field], f"{field}={value!r} accepted"
        if repr(value) in EMPTY and field in ("tags", "config", "data"):
            assert getattr(spec, field) == {"tags": (), "config": {}, "data": {}}[field]
    for field in ("description", "license"):
        assert getattr(parse_entry({**BASE_ENTRY, field: 2024}, "r", "rlhub"), field) == "2024"


@pytest.mark.parametrize("field", ["id", "entry_point", "version", "domain", "description", "license"])
@pytest.mark.parametrize("how", ["absent", None, ""])
def test_a_required_field_left_out_or_empty_is_missing(field, how):
    entry = {k: v for k, v in BASE_ENTRY.items() if k != field}
    if how != "absent":
        entry[field] = how
    name = "<missing id>" if (field, how) == ("id", "absent") else entry.get("id")
    with pytest.raises(RLHubError, match=rf"^reg\.yaml: entry {name!r}: missing field '{field}'$"):
        parse_entry(entry, "reg.yaml", "rlhub")


@pytest.mark.parametrize(
    "entry, message",
    [
        ({**BASE_ENTRY, "licence": "x", "source": "y"}, r"unknown field\(s\) \['licence', 'source'\]; allowed: \['id'"),
        (
            {**BASE_ENTRY, "domain": "poetry"},
            r"field 'domain' must be one of \['math', 'code', 'tool', 'instruction'\]",
        ),
        ({**BASE_ENTRY, "version": "1"}, r"field 'version' must be the integer in the id \(1\), got '1'$"),
        ({**BASE_ENTRY, "version": 0}, r"field 'version' must be the integer in the id \(1\), got 0$"),
        ({**BASE_ENTRY, "tags": ["a", 1]}, r"field 'tags' must be a list of strings, got \['a', 1\]$"),
        ({**BASE_ENTRY, "data": {"version": "1"}}, r"field 'data' must be a mapping with 'source'"),
        ({**BASE_ENTRY, "data": {"source": "s", "version": 3}}, r"field 'data' values must be strings"),
        (["not", "a", "mapping"], r"^reg\.yaml: each entry must be a mapping with \['id', .*'license'\], got list$"),
    ],
)
def test_a_bad_entry_is_one_line_naming_entry_field_and_fix(entry, message):
    with pytest.raises(RLHubError, match=message):
        parse_entry(entry, "reg.yaml", "rlhub")


def test_every_shipped_entry_parses_to_what_it_says():
    data = yaml.safe_load(default_registry_path().read_text(encoding="utf-8"))
    for raw, spec in zip(data["envs"], parse_registry(data, "registry.yaml"), strict=True):
        got = spec.to_dict()
        assert {k: got[k] for k in raw} == {**raw, "tags": raw.get("tags") or [], "config": raw.get("config") or {}}
        assert spec.source == "rlhub" and isinstance(spec.tags, tuple)


@pytest.mark.parametrize("data", [None, 0, "envs", {"envs": None}, {"envs": {"a": 1}}, ("a",)])
def test_a_registry_without_an_envs_list_is_refused(data):
    with pytest.raises(RLHubError, match=r"^r\.yaml: expected a top-level 'envs:' list of entries$"):
        parse_registry(data, "r.yaml")


def test_a_registry_is_a_list_or_an_envs_mapping_and_other_keys_warn():
    assert parse_registry([], "r") == parse_registry({"envs": []}, "r") == []
    with pytest.warns(UserWarning) as caught:
        specs = parse_registry({"envs": [BASE_ENTRY], "other": 1, 3: 2}, "r")
    assert [s.id for s in specs] == ["arithmetic-v1"]
    assert [str(w.message) for w in caught] == [
        f"r: unknown top-level key {key!r} ignored; a registry file holds only 'envs:'" for key in (3, "other")
    ]


# What changed: the hand-written checks let these through.


def test_a_bool_is_no_version():
    with pytest.raises(RLHubError, match=r"entry 'arithmetic-v1': field 'version' must be the integer in the id"):
        parse_entry({**BASE_ENTRY, "version": True}, "reg.yaml", "rlhub")


@dataclasses.dataclass
class _Containers:
    names: list[str] = dataclasses.field(default_factory=list)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)


def test_list_items_are_checked():
    assert build_config(_Containers, {"names": ["a"]}).names == ["a"]
    with pytest.raises(ConfigError, match=r"^demo: config key 'names' must be list\[str\], got \[1\]$"):
        build_config(_Containers, {"names": [1]}, owner="demo")


def test_mapping_keys_are_checked():
    with pytest.raises(ConfigError, match=r"config key 'options' must be dict\[str, Any\], got \{1: 1\}$"):
        build_config(_Containers, {"options": {1: 1}}, owner="demo")


@dataclasses.dataclass
class _NoDefault:
    size: int
    seed: int = 0


def test_a_field_without_default_must_be_given():
    assert build_config(_NoDefault, {"size": 3}).size == 3
    with pytest.raises(ConfigError, match=r"^demo: config key 'size' has no default; pass size=\.\.\.$"):
        build_config(_NoDefault, {"seed": 1}, owner="demo")
