"""The registry: loading, validation errors that name the entry and field, plugins, gymnasium."""

from __future__ import annotations

import importlib.metadata
import textwrap

import gymnasium
import pytest

import rlhub
from rlhub.env import registry
from rlhub.errors import ConfigError, RLHubError

GOOD = """
envs:
  - id: arithmetic-v0
    entry_point: rlhub.envs.arithmetic:ArithmeticEnv
    version: 0
    domain: math
    description: test
    license: Apache-2.0
"""


def test_list_envs_has_the_four_math_envs():
    ids = {s.id for s in rlhub.list_envs()}
    assert {"arithmetic-v1", "countdown-v0", "gsm8k-v1", "math-v1"} <= ids
    spec = registry.get_spec("countdown-v0")
    assert (spec.version, spec.domain, spec.source) == (0, "math", "rlhub")
    assert spec.description and spec.license and spec.tags


def test_make_applies_defaults_and_overrides():
    env = rlhub.make("arithmetic-v1", difficulty=4)
    assert env.config.difficulty == 4 and env.env_id == "arithmetic-v1"
    assert rlhub.make("arithmetic-v1").config.difficulty == 2


def test_unknown_id_names_valid_choices():
    with pytest.raises(
        RLHubError, match=r"unknown environment 'countdwn-v0' \(did you mean 'countdown-v0'\?\).*gsm8k-v1"
    ):
        rlhub.make("countdwn-v0")


def test_a_replaced_version_names_its_successor_instead_of_guessing(registry_file):
    # Two versions of one env: asking for a third names the registered ones and the newest, and never
    # silently makes another version (a changed reward is a new version: Gymnasium's rule).
    second = GOOD.replace("id: arithmetic-v0", "id: arithmetic-v2").replace("version: 0", "version: 2")
    registry_file(GOOD + second.split("envs:", 1)[1])
    with pytest.raises(
        RLHubError,
        match=r"'arithmetic-v1' is not registered; registered versions: arithmetic-v0, "
        r"arithmetic-v2\. Use 'arithmetic-v2' \(what changed: rlhub envs show arithmetic-v2\)",
    ):
        rlhub.make("arithmetic-v1")
    assert registry.other_versions("arithmetic-v2") == ["arithmetic-v0"]
    assert registry.other_versions("countdown-v0") == []


@pytest.mark.parametrize(
    "config, message",
    [
        ({"difficulty": 9}, "difficulty must be in 1..5"),
        ({"dificulty": 2}, r"unknown config key\(s\) \['dificulty'\]; valid keys: .*difficulty"),
        ({"difficulty": "2"}, "config key 'difficulty' must be int"),
        ({"answer_format": "xml"}, "answer_format must be 'tags' or 'boxed'"),
    ],
)
def test_bad_config_is_one_clear_error(config, message):
    with pytest.raises(ConfigError, match=message):
        rlhub.make("arithmetic-v1", **config)


def test_gymnasium_make_returns_the_same_env():
    env = gymnasium.make("rlhub/gsm8k-v1")
    obs, info = env.reset(seed=0)
    assert isinstance(obs, str) and info["prompt"][-1]["content"] == obs
    _, _, terminated, truncated, step_info = env.step("<think>no</think><answer>-1</answer>")
    assert terminated and not truncated and "correct" in step_info["rewards"]
    assert gymnasium.make("rlhub/countdown-v0", max_numbers=3).unwrapped.config.max_numbers == 3


@pytest.mark.parametrize(
    "mutation, message",
    [
        (lambda s: s.replace("    domain: math\n", ""), r"entry 'arithmetic-v0': missing field 'domain'"),
        (
            lambda s: s.replace("domain: math", "domain: poetry"),
            r"entry 'arithmetic-v0': field 'domain' must be one of",
        ),
        (lambda s: s.replace("version: 0", "version: 1"), r"entry 'arithmetic-v0': field 'version'"),
        (lambda s: s.replace("id: arithmetic-v0", "id: Arithmetic"), r"entry 'Arithmetic': field 'id'"),
        (lambda s: s.replace("ArithmeticEnv", "ArithmeticEnv()"), r"field 'entry_point' must be"),
        (lambda s: s + s.replace("envs:\n", ""), r"duplicate environment id 'arithmetic-v0'"),
        (
            lambda s: s.replace("    license: Apache-2.0\n", "    license: Apache-2.0\n    licence: x\n"),
            r"unknown field\(s\) \['licence'\]",
        ),
        (lambda s: s.replace("envs:", "envs: {"), r"not valid YAML"),
    ],
)
def test_malformed_registry_names_entry_and_field(registry_file, mutation, message):
    registry_file(mutation(GOOD))
    with pytest.raises(RLHubError, match=message):
        rlhub.list_envs()


def test_unimportable_entry_point_named_when_made(registry_file):
    registry_file(GOOD.replace("rlhub.envs.arithmetic", "rlhub.envs.nope"))
    with pytest.raises(RLHubError, match=r"entry 'arithmetic-v0': field 'entry_point' 'rlhub.envs.nope:ArithmeticEnv'"):
        rlhub.make("arithmetic-v0")


class _FakeDist:
    name = "rlhub-env-demo"


class _FakeEntryPoint:
    value = "rlhub_env_demo:ENVS"
    dist = _FakeDist()

    def load(self):
        return [
            {
                "id": "demo-arith-v3",
                "entry_point": "rlhub.envs.arithmetic:ArithmeticEnv",
                "version": 3,
                "domain": "math",
                "description": "from a plugin",
                "license": "MIT",
                "config": {"difficulty": 1},
            }
        ]


def test_env_packages_join_through_entry_points(registry_file, monkeypatch):
    # Trusted, so it runs in-process: the sandboxed path is tests/test_hub_isolation.py's.
    monkeypatch.setenv("RLHUB_TRUST", "rlhub-env-demo")
    registry_file(GOOD)
    real = importlib.metadata.entry_points
    monkeypatch.setattr(
        importlib.metadata,
        "entry_points",
        lambda group=None, **kw: [_FakeEntryPoint()] if group == "rlhub.envs" else real(group=group, **kw),
    )
    specs = {s.id: s for s in rlhub.list_envs()}
    assert specs["demo-arith-v3"].source == "pip:rlhub-env-demo"
    assert rlhub.make("demo-arith-v3").config.difficulty == 1


def test_code_hash_changes_with_config():
    spec = registry.get_spec("arithmetic-v1")
    other = registry.EnvSpec(**{**spec.__dict__, "config": {"difficulty": 5}})
    assert len(spec.code_hash()) == 16 and spec.code_hash() != other.code_hash()


def test_registry_yaml_is_parsed_with_every_field(monkeypatch):
    monkeypatch.setenv("RLHUB_TRUST", "demo")  # made in-process below: a trusted package's entry
    text = textwrap.dedent(
        GOOD
        + """    tags: [procedural, integers]
    config:
      difficulty: 3
    data: {source: generated, version: "1"}
"""
    )
    specs = registry.parse_registry(__import__("yaml").safe_load(text), "inline", source="pip:demo")
    assert [s.to_dict() for s in specs] == [
        {
            "id": "arithmetic-v0",
            "version": 0,
            "domain": "math",
            "tags": ["procedural", "integers"],
            "description": "test",
            "license": "Apache-2.0",
            "entry_point": "rlhub.envs.arithmetic:ArithmeticEnv",
            "config": {"difficulty": 3},
            "source": "pip:demo",
            "data": {"source": "generated", "version": "1"},
        }
    ]
    assert specs[0].make().config.difficulty == 3  # the entry's config is the env's default


def test_unknown_top_level_key_is_one_warning_naming_it(registry_file):
    registry_file(GOOD + "\nenvironments: []\n")
    with pytest.warns(UserWarning, match=r"unknown top-level key 'environments' ignored") as caught:
        ids = [s.id for s in rlhub.list_envs()]
    assert ids == ["arithmetic-v0"] and len(caught) == 1


@pytest.mark.parametrize(
    "data, message",
    [
        ("{version: '1'}", "field 'data' must be a mapping with 'source'"),
        ("{source: x, shipped: gsm8k, url: y}", "field 'data' must be a mapping"),
        ("{source: x, version: 3}", "field 'data' values must be strings"),
    ],
)
def test_bad_data_field_names_entry_and_field(registry_file, data, message):
    registry_file(GOOD + f"    data: {data}\n")
    with pytest.raises(RLHubError, match=rf"entry 'arithmetic-v0': {message}"):
        rlhub.list_envs()


def test_every_data_env_records_its_source_and_shipped_copies_carry_a_license():
    from rlhub.env import DatasetEnv
    from rlhub.env.data import shipped_data_dir

    for spec in rlhub.list_envs():
        if isinstance(spec.make(), DatasetEnv):
            assert spec.data.get("source") and spec.data.get("version"), spec.id
        if spec.data.get("shipped"):
            folder = shipped_data_dir() / spec.data["shipped"]
            assert (folder / "LICENSE").read_text().strip(), spec.id
            assert any(folder.glob("*.json*")), spec.id
