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
import logging
import os
import warnings
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from rlhub.env.entry import DOMAINS as DOMAINS  # re-exported: rlhub.authoring.scaffold reads it here
from rlhub.env.entry import ID_RE, RegistryFile, validate_entry
from rlhub.errors import RLHubError
from rlhub.resolve import resolve, resolve_module

ENTRY_POINT_GROUP = "rlhub.envs"
FAMILIES = {"rg": "rlhub.envs.reasoning_gym"}
"""Id namespaces whose envs a module makes on demand instead of listing them: ``rg/<task>-v2`` is any
reasoning-gym task (the ``rg`` extra). The module gives ``FAMILY`` (a one-line summary), ``VERSION``,
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
    """Validate one registry entry (a :class:`rlhub.env.entry.RegistryEntry`); each error names entry and field."""
    entry = validate_entry(raw, where)
    return EnvSpec(
        id=entry.id,
        entry_point=entry.entry_point,
        version=entry.version,
        domain=entry.domain,
        description=entry.description,
        license=entry.license,
        tags=tuple(entry.tags),
        config=entry.config,
        source=source,
        data=dict(entry.data or {}),
    )


def parse_registry(data: Any, where: str, source: str = "rlhub") -> list[EnvSpec]:
    """The specs of a registry file's contents: a mapping with an ``envs:`` list, or the list itself.

    Raises:
        RLHubError: The contents hold no list of entries, or an entry is malformed (naming it).
    """
    if isinstance(data, dict):
        for key in sorted(set(data) - set(RegistryFile.model_fields), key=str):
            warnings.warn(
                f"{where}: unknown top-level key {key!r} ignored; a registry file holds only 'envs:'", stacklevel=2
            )
    try:
        registry = RegistryFile.model_validate({"envs": data} if isinstance(data, list) else data)
    except ValidationError:
        raise RLHubError(f"{where}: expected a top-level 'envs:' list of entries") from None
    return [parse_entry(raw, where, source) for raw in registry.envs]


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


@dataclass(frozen=True)
class BrokenPackage:
    """An installed env package that failed to load: its envs are left out, the other packages' still load."""

    name: str
    error: RLHubError
    """What went wrong, naming the package (a ``CapabilityViolation`` as its sandbox named it)."""
    envs: tuple[str, ...] = ()
    """The env ids its manifest lists (read without importing it); empty when that cannot be read."""

    def message(self) -> str:
        """Its error and the fix, in one line."""
        error = " ".join(str(self.error).split())
        return f"{error}; its envs are left out: reinstall it, or remove it with `pip uninstall {self.name}`"


log = logging.getLogger(__name__)
_warned: set[str] = set()
"""Broken packages' messages already logged: each is logged once per process, however often the registry reloads."""


def _entry_point_specs(ep: importlib.metadata.EntryPoint, dist: str, source: str, sandboxed: bool) -> list[EnvSpec]:
    """The specs one ``rlhub.envs`` entry point registers, loaded in its sandbox if ``sandboxed``.

    Raises:
        RLHubError: Loading it failed or gave malformed entries; names the package and what went wrong.
    """
    from rlhub.hub.isolation import sandboxed_entries
    from rlhub.hub.sandbox import CapabilityViolation

    try:
        if sandboxed:
            # Its code is imported only in its sandbox, never in this process.
            return parse_registry(sandboxed_entries(ep), f"entry point {ep.value!r}", source)
        obj = ep.load()
        obj = obj() if callable(obj) else obj
        if isinstance(obj, (str, Path)):
            return read_registry_file(Path(obj), source)
        return parse_registry(obj, f"entry point {ep.value!r}", source)
    except CapabilityViolation:
        raise  # as its sandbox named it: the package and the capability
    except (Exception, SystemExit) as exc:  # its own code: any error, even sys.exit at import, is its failure
        what = str(exc) if isinstance(exc, RLHubError) else f"{type(exc).__name__}: {exc}"
        raise RLHubError(f"environment package {dist!r} (entry point {ep.value!r}) failed to load: {what}") from exc


def _declared_envs(ep: importlib.metadata.EntryPoint) -> tuple[str, ...]:
    """The env ids a package's manifest lists, read without importing it; () when it has none or it is unreadable."""
    from rlhub.hub.manifest import installed_manifest

    try:
        manifest = installed_manifest(ep)
    except Exception:  # a broken package's manifest may be broken too: its load error is the one to report
        return ()
    return manifest.envs if manifest is not None else ()


def _plugin_specs(registered: dict[str, EnvSpec]) -> tuple[list[EnvSpec], list[BrokenPackage]]:
    """The specs of every installed env package, and the packages that failed to load.

    A package fails as a whole, and alone: when its entry point raises, its entries are malformed, or it
    registers an id that ``registered`` or an earlier package already has, none of its envs are added.
    """
    from rlhub.hub.isolation import isolated

    taken = {env_id: spec.source for env_id, spec in registered.items()}
    specs: list[EnvSpec] = []
    broken: list[BrokenPackage] = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else ep.value
        version = getattr(ep.dist, "version", None)
        source = f"pip:{dist}=={version}" if version else f"pip:{dist}"
        sandboxed = ep.dist is not None and isolated(source)  # outside the try: a bad rlhub.lock is not theirs
        try:
            mine = _entry_point_specs(ep, dist, source, sandboxed)
            ids = [spec.id for spec in mine]
            clash = next((i for n, i in enumerate(ids) if i in taken or i in ids[:n]), None)
            if clash is not None:
                other = taken.get(clash, source)
                raise RLHubError(f"environment package {dist!r} registers {clash!r}, which {other} registers too")
        except RLHubError as exc:
            broken.append(BrokenPackage(dist, exc, _declared_envs(ep)))
            continue
        taken.update({spec.id: source for spec in mine})
        specs.extend(mine)
    return specs, broken


@cache
def _load(path: str) -> tuple[dict[str, EnvSpec], tuple[BrokenPackage, ...]]:
    by_id: dict[str, EnvSpec] = {}
    for spec in read_registry_file(Path(path)):
        if spec.id in by_id:
            raise RLHubError(f"duplicate environment id {spec.id!r} in {path}")
        by_id[spec.id] = spec
    specs, broken = _plugin_specs(by_id)
    by_id.update({spec.id: spec for spec in specs})
    for package in broken:
        message = package.message()
        if message not in _warned:
            _warned.add(message)
            log.warning(message, extra={"package": package.name})
    return by_id, tuple(broken)


def load_registry(path: str | Path | None = None) -> dict[str, EnvSpec]:
    """All registered environments by id (registry.yaml first, then installed env packages).

    An env package that fails to load is left out and logged once (see :func:`broken_packages`).
    """
    return dict(_load(str(path or default_registry_path()))[0])


def broken_packages(path: str | Path | None = None) -> list[BrokenPackage]:
    """The installed env packages that failed to load, each with its error and the fix."""
    return list(_load(str(path or default_registry_path()))[1])


def clear_cache() -> None:
    _load.cache_clear()


def get_spec(env_id: str) -> EnvSpec:
    registry = load_registry()
    if env_id in registry:
        return registry[env_id]
    broken = broken_packages()
    provider = next((package for package in broken if env_id in package.envs), None)
    if provider is not None:
        raise provider.error.with_traceback(None)  # the package's own error (its type too), not "unknown"
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
    # A broken package whose manifest cannot say what it serves may be the one that serves env_id.
    maybe = "".join(
        f"; it may come from an env package that failed to load: {p.message()}" for p in broken if not p.envs
    )
    raise RLHubError(f"unknown environment {env_id!r}{hint}; valid ids: {', '.join(sorted(registry))}{maybe}")


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
    (``rg/leg_counting-v2`` -> ``rlhub/rg.leg_counting-v2``): gymnasium ids have at most one slash."""
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
