"""The environment registry: ``registry.yaml`` plus environments from other pip packages.

Each entry is one versioned id (``countdown-v0``) with an entry point (``module:attr``), domain, tags,
a one-line description, default config and the license of its data. Other packages add environments
through the ``rlhub.envs`` entry-point group; the entry point loads to a registry YAML path, a list of
entry dicts, or a callable returning either.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.metadata
import inspect
import json
import os
import re
import warnings
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from rlhub.errors import RLHubError
from rlhub.resolve import resolve, resolve_module

DOMAINS = ("math", "code", "tool", "instruction")
ID_RE = re.compile(r"^(?:[a-z0-9][a-z0-9_.-]*/)?[a-z0-9][a-z0-9_.-]*-v(\d+)$")
REQUIRED = ("id", "entry_point", "version", "domain", "description", "license")
OPTIONAL = ("tags", "config", "data")
DATA_FIELDS = ("source", "version", "shipped")
"""Keys of an entry's ``data:`` mapping: where the data set comes from (``source``), which release
(``version``), and the folder under ``data/`` holding rlhub's copy with its LICENSE (``shipped``, or absent)."""
ENTRY_POINT_GROUP = "rlhub.envs"
FAMILIES = {"rg": "rlhub.envs.reasoning_gym"}
"""Id namespaces whose envs a module makes on demand instead of listing them: ``rg/<task>-v1`` is any
reasoning-gym task (the ``rg`` extra). The module gives ``FAMILY`` (a one-line summary),
``family_spec(env_id)`` and ``family_specs()``; family envs are not in :func:`list_envs`."""


@dataclass(frozen=True)
class EnvSpec:
    """One registered environment."""

    id: str
    entry_point: str
    version: int
    domain: str
    description: str
    license: str
    tags: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)
    source: str = "rlhub"
    data: dict[str, str] = field(default_factory=dict)

    def load_class(self) -> type:
        return resolve(self.entry_point, what=f"registry entry {self.id!r}: field 'entry_point'")

    def make(self, **overrides: Any):
        """The env with ``overrides`` on its defaults; an untrusted package's runs in its sandbox (``rlhub.hub``)."""
        from rlhub.hub.isolation import isolated, make_sandboxed

        if isolated(self.source):
            return make_sandboxed(self, overrides)
        cls = self.load_class()
        env = cls(**{**self.config, **overrides})
        env.env_id = self.id
        return env

    def code_hash(self) -> str:
        """sha256 over the entry module's source, the default config and the data files the env class
        declares (``data_files``: paths relative to its module, shipped with it): ties a run to the exact env.
        An isolated package's hash is over its installed files instead: hashing must not import its code here."""
        from rlhub.hub.isolation import installed_hash, isolated

        if isolated(self.source):
            return installed_hash(self)
        h = hashlib.sha256()
        module = resolve_module(self.entry_point.partition(":")[0], what=f"registry entry {self.id!r}")
        try:
            h.update(inspect.getsource(module).encode())
        except (OSError, TypeError):
            h.update(self.entry_point.encode())
        h.update(json.dumps(self.config, sort_keys=True, default=str).encode())
        folder = Path(getattr(module, "__file__", None) or ".").parent
        for name in getattr(self.load_class(), "data_files", ()):
            try:
                h.update(name.encode() + b"\0" + (folder / name).read_bytes())
            except OSError as exc:
                raise RLHubError(f"registry entry {self.id!r}: declared data file {name!r} unreadable: {exc}")
        return h.hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "domain": self.domain,
            "tags": list(self.tags),
            "description": self.description,
            "license": self.license,
            "entry_point": self.entry_point,
            "config": dict(self.config),
            "source": self.source,
            "data": dict(self.data),
        }


def default_registry_path() -> Path:
    override = os.environ.get("RLHUB_REGISTRY")
    if override:
        return Path(override)
    package = Path(__file__).resolve().parents[1]
    packaged = package / "_data" / "registry.yaml"
    return packaged if packaged.is_file() else package.parent / "registry.yaml"


def parse_entry(raw: Any, where: str, source: str) -> EnvSpec:
    """Validate one registry entry; every error names the entry and the field."""
    if not isinstance(raw, dict):
        raise RLHubError(f"{where}: each entry must be a mapping with {list(REQUIRED)}, got {type(raw).__name__}")
    name = raw.get("id", "<missing id>")
    label = f"{where}: entry {name!r}"
    for key in REQUIRED:
        if key not in raw or raw[key] in (None, ""):
            raise RLHubError(f"{label}: missing field {key!r}")
    unknown = sorted(set(raw) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise RLHubError(f"{label}: unknown field(s) {unknown}; allowed: {list(REQUIRED + OPTIONAL)}")
    m = ID_RE.match(str(raw["id"]))
    if not m:
        raise RLHubError(f"{label}: field 'id' must look like 'name-v0' (lowercase, versioned)")
    if not isinstance(raw["version"], int) or raw["version"] != int(m.group(1)):
        raise RLHubError(
            f"{label}: field 'version' must be the integer in the id ({m.group(1)}), got {raw['version']!r}"
        )
    if raw["domain"] not in DOMAINS:
        raise RLHubError(f"{label}: field 'domain' must be one of {list(DOMAINS)}, got {raw['domain']!r}")
    ep = str(raw["entry_point"])
    if not re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", ep):
        raise RLHubError(f"{label}: field 'entry_point' must be 'package.module:Class', got {ep!r}")
    tags = raw.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise RLHubError(f"{label}: field 'tags' must be a list of strings")
    config = raw.get("config") or {}
    if not isinstance(config, dict):
        raise RLHubError(f"{label}: field 'config' must be a mapping of config keys to defaults")
    data = raw.get("data") or {}
    if not isinstance(data, dict) or (data and "source" not in data) or set(data) - set(DATA_FIELDS):
        raise RLHubError(
            f"{label}: field 'data' must be a mapping with 'source' and optionally 'version' and 'shipped', "
            f"got {data!r}"
        )
    if not all(isinstance(v, str) for v in data.values()):
        raise RLHubError(f"{label}: field 'data' values must be strings, got {data!r}")
    return EnvSpec(
        id=raw["id"],
        entry_point=ep,
        version=raw["version"],
        domain=raw["domain"],
        description=str(raw["description"]),
        license=str(raw["license"]),
        tags=tuple(tags),
        config=config,
        source=source,
        data=dict(data),
    )


def parse_registry(data: Any, where: str, source: str = "rlhub") -> list[EnvSpec]:
    if isinstance(data, dict):
        for key in sorted(set(data) - {"envs"}, key=str):
            warnings.warn(
                f"{where}: unknown top-level key {key!r} ignored; a registry file holds only 'envs:'",
                stacklevel=2,
            )
    entries = data.get("envs") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise RLHubError(f"{where}: expected a top-level 'envs:' list of entries")
    return [parse_entry(raw, where, source) for raw in entries]


def read_registry_file(path: Path, source: str = "rlhub") -> list[EnvSpec]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RLHubError(f"registry file {path} not found; set RLHUB_REGISTRY or reinstall rlhub")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark else ""
        raise RLHubError(f"{path}{at}: not valid YAML ({getattr(exc, 'problem', exc)})")
    return parse_registry(data, str(path), source)


def _plugin_specs() -> list[EnvSpec]:
    from rlhub.hub.isolation import isolated, sandboxed_entries

    specs = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else ep.value
        version = getattr(ep.dist, "version", None)
        source = f"pip:{dist}=={version}" if version else f"pip:{dist}"
        if ep.dist is not None and isolated(source):
            # Its code is imported only in its sandbox, never in this process.
            specs.extend(parse_registry(sandboxed_entries(ep), f"entry point {ep.value!r}", source))
            continue
        try:
            obj = ep.load()
            if callable(obj):
                obj = obj()
        except Exception as exc:
            raise RLHubError(f"environment package {dist!r} (entry point {ep.value!r}) failed to load: {exc}")
        if isinstance(obj, (str, Path)):
            specs.extend(read_registry_file(Path(obj), source))
        else:
            specs.extend(parse_registry(obj, f"entry point {ep.value!r}", source))
    return specs


@cache
def _load(path: str) -> dict[str, EnvSpec]:
    specs = read_registry_file(Path(path)) + _plugin_specs()
    by_id: dict[str, EnvSpec] = {}
    for spec in specs:
        if spec.id in by_id:
            other = by_id[spec.id]
            raise RLHubError(f"duplicate environment id {spec.id!r} (from {other.source} and {spec.source})")
        by_id[spec.id] = spec
    return by_id


def load_registry(path: str | Path | None = None) -> dict[str, EnvSpec]:
    """All registered environments by id (registry.yaml first, then installed env packages)."""
    return dict(_load(str(path or default_registry_path())))


def clear_cache() -> None:
    _load.cache_clear()


def get_spec(env_id: str) -> EnvSpec:
    registry = load_registry()
    if env_id in registry:
        return registry[env_id]
    namespace, slash, _ = env_id.partition("/")
    if slash and namespace in FAMILIES:
        return family(namespace).family_spec(env_id)
    versions = other_versions(env_id, registry)
    if versions:
        # Gymnasium's rule: a changed reward or prompt is a new version, and the old id stays an error
        # that names its successor, never a silent alias to different behaviour.
        newest = versions[-1]
        raise RLHubError(
            f"environment {env_id!r} is not registered; registered versions: {', '.join(versions)}. "
            f"Use {newest!r} (what changed: rlhub envs show {newest})"
        )
    close = difflib.get_close_matches(env_id, list(registry), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise RLHubError(f"unknown environment {env_id!r}{hint}; valid ids: {', '.join(sorted(registry))}")


def other_versions(env_id: str, registry: dict[str, EnvSpec] | None = None) -> list[str]:
    """The registered ids with the same name as ``env_id`` and another version, oldest first.

    Example:
        >>> other_versions("countdown-v7")
        ['countdown-v0']
    """
    registry = load_registry() if registry is None else registry
    name, sep, _ = env_id.rpartition("-v")
    if not sep or not ID_RE.match(env_id):
        return []
    found = [(spec.version, spec.id) for spec in registry.values() if spec.id.rpartition("-v")[0] == name]
    return [i for _, i in sorted(found) if i != env_id]


def list_envs() -> list[EnvSpec]:
    """Every registered environment spec, sorted by domain then id."""
    return sorted(load_registry().values(), key=lambda s: (s.domain, s.id))


def make(env_id: str, **config: Any):
    """Create the environment registered as ``env_id`` with ``config`` overriding its defaults.

    Example:
        >>> env = make("countdown-v0")
        >>> ex = env.examples("train", limit=1)[0]
        >>> env.score(env.gold_completion(ex), ex).rewards["correct"]
        1.0

    ``env_id`` may also be the URL of a served env (``http://127.0.0.1:8700/countdown-v0``, see
    ``rlhub serve``); ``config`` then holds the client's options (``token``, ``retries``, ``timeout``).
    ``word-count-v0@0.1.0`` is an env from a hub package pinned in ``rlhub.lock`` (see ``rlhub.hub.lock``).
    """
    if env_id.startswith(("http://", "https://")):
        from rlhub.serve.client import RemoteEnv

        return RemoteEnv(env_id, **config)
    if "@" in env_id:
        from rlhub.hub.lock import check_locked

        env_id = check_locked(env_id)  # NAME@VERSION: its package's installed files must be those rlhub.lock pins
    return get_spec(env_id).make(**config)


def family(namespace: str):
    """The module that makes the envs of an id family (``family("rg").family_specs()`` lists them)."""
    return resolve_module(FAMILIES[namespace], what=f"id family {namespace!r}")


def gym_id(env_id: str) -> str:
    """The gymnasium id of an env: ``rlhub/<env_id>``, with a namespace's slash turned into a dot
    (``rg/leg_counting-v1`` -> ``rlhub/rg.leg_counting-v1``): gymnasium ids have at most one slash."""
    return f"rlhub/{env_id.replace('/', '.')}"


def register_with_gymnasium(specs: list[EnvSpec] | None = None) -> None:
    """Make envs (default: every registered one) available as ``gymnasium.make(gym_id(env_id))``."""
    import gymnasium

    for spec in load_registry().values() if specs is None else specs:
        if gym_id(spec.id) not in gymnasium.registry:
            gymnasium.register(id=gym_id(spec.id), entry_point=_GymFactory(spec.id), disable_env_checker=False)


class _GymFactory:
    """A picklable creator, so vectorized gymnasium envs can build rlhub envs in subprocesses."""

    def __init__(self, env_id: str):
        self.env_id = env_id

    def __call__(self, **config: Any):
        return make(self.env_id, **config)
