"""An env package's manifest: what it serves and the capabilities its code runs with.

The manifest is ``rlhub.toml`` beside the package's ``__init__.py`` (package data, so it travels in the wheel;
pyproject.toml does not). It holds the fields of a ``[tool.rlhub]`` table, and :func:`read_manifest` reads
either form::

    envs = ["word-count-v0"]
    license = "MIT"

    [capabilities]
    network = []          # TCP host:port pairs it may connect to; [] is none
    writable = ["."]      # paths under its workdir it may write
    memory_mb = 1024      # address space of its process
    cpu_seconds = 10      # CPU time per scoring call
    processes = 16        # processes and threads at once
"""

from __future__ import annotations

import importlib.metadata
import ipaddress
import re
import sys
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rlhub.errors import RLHubError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

MANIFEST_FILE = "rlhub.toml"
HOST_PORT = re.compile(r"^(?P<host>[A-Za-z0-9.-]{1,253}):(?P<port>\d{1,5})$")
LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


class Capabilities(BaseModel):
    """What an env package's code may do when it runs isolated (see docs/adding-an-environment.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    network: tuple[str, ...] = ()
    """TCP ``host:port`` pairs it may connect to (a host name, ``localhost`` or a 127.x.y.z address); empty: no
    network at all. Inside its sandbox a declared name resolves with no DNS (:mod:`rlhub.hub.egress`)."""
    writable: tuple[str, ...] = (".",)
    """Paths relative to its private workdir that it may write (``.``: all of the workdir)."""
    memory_mb: int = Field(default=1024, ge=256, le=1 << 20)
    """Address space of its process, in MiB (the interpreter and the env server take about 200)."""
    cpu_seconds: float = Field(default=10.0, gt=0, le=3600)
    """CPU time one scoring call may use."""
    processes: int = Field(default=16, ge=4, le=4096)
    """Processes and threads it may run at once (the env server's own threads count)."""

    @field_validator("network")
    @classmethod
    def _host_ports(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            problem = _host_port_problem(entry)
            if problem:
                raise ValueError(f"{entry!r} {problem}")
        return value

    @field_validator("writable")
    @classmethod
    def _relative_paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in value if PurePosixPath(v).is_absolute() or ".." in PurePosixPath(v).parts]
        if bad:
            raise ValueError(f"paths must be relative to the workdir and stay inside it, got {bad}")
        return value


def _host_port_problem(entry: str) -> str | None:
    """What is wrong with one ``network`` entry, with the fix; None when nothing is."""
    match = HOST_PORT.match(entry)
    if match is None:
        return "is not host:port: write entries like 'api.example.com:443' (TCP only; IPv6 is not supported)"
    host, port = match["host"], int(match["port"])
    if not 1 <= port <= 65535:
        return f"has port {port}: use a port from 1 to 65535"
    labels = host.split(".")
    if all(label.isdigit() for label in labels):
        try:
            address = ipaddress.IPv4Address(host)
        except ValueError:
            return "is not an IPv4 address: write four numbers (127.0.0.1) or the host's name"
        if not address.is_loopback:
            return (
                "is an IP address outside loopback, which the sandbox cannot reach: declare the host's public name "
                "instead (only 127.x.y.z may be written as an address; private networks are out of reach)"
            )
    elif not all(LABEL.match(label) for label in labels) or not labels[-1][0].isalpha():
        return "is not a valid host name: use letters, digits and '-' in dot-separated labels ('api.example.com')"
    return None


class Manifest(BaseModel):
    """The ``[tool.rlhub]`` table of an env package."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    envs: tuple[str, ...] = Field(min_length=1)
    """The env ids (``name-vN``) the package registers."""
    license: str = Field(min_length=1)
    """The SPDX license of the package's code and data."""
    capabilities: Capabilities = Capabilities()


def parse_manifest(data: dict, where: str) -> Manifest:
    """Validate a manifest table.

    Raises:
        RLHubError: One line naming the file, the key and what to write instead.
    """
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        fix = {"missing": "add it", "extra_forbidden": "remove it (allowed: envs, license, capabilities)"}
        raise RLHubError(f"{where}: manifest key {key!r}: {message}; {fix.get(error['type'], 'correct it')}")


def read_manifest(path: str | Path) -> Manifest:
    """The manifest in an ``rlhub.toml`` or in a pyproject.toml's ``[tool.rlhub]`` table."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RLHubError(f"{path}: cannot read the env manifest: {exc}")
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("rlhub")
        if data is None:
            raise RLHubError(f"{path}: no [tool.rlhub] table; add one with envs, license and capabilities")
    return parse_manifest(data, str(path))


def installed_manifest(entry_point: importlib.metadata.EntryPoint) -> Manifest | None:
    """The manifest shipped beside the module an ``rlhub.envs`` entry point names, read without importing it.

    Returns:
        The manifest, or None when the package ships none.
    """
    top = entry_point.value.partition(":")[0].split(".")[0]
    dist = entry_point.dist
    for file in (dist.files or []) if dist is not None else []:
        if file.parts == (top, MANIFEST_FILE):
            return read_manifest(Path(dist.locate_file(file)))
    return None
