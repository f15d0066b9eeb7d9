"""An environment as a container: ``rlhub env build ENV_ID`` and ``rlhub serve ENV_ID --docker``.

The image is built locally (no registry is needed): the Python base image that
scripts/docker_images.py builds, plus exactly the Python files serving this env loads. Which
files those are is found by serving it once in a subprocess (info, examples, gold, score and an
episode) and listing the modules it imported; rlhub itself is laid out as its installed package.
So an env package's own requirements come along as long as serving the env imports them. The
image is tagged by a hash of its contents, so an unchanged env is not rebuilt.

The container runs ``python3 -m rlhub serve ENV_ID`` as an unprivileged user with a read-only
root, no capabilities and caps on memory and processes. It shares the host's network namespace
and binds 127.0.0.1 (the engine started by scripts/test-docker.sh has no bridge network).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import time
from contextlib import contextmanager
from pathlib import Path

from rlhub.errors import RLHubError

BASE_REPOSITORY = "rlhub-python"
SITE = "opt/rlhub/site"
PACKAGE_DIRS = {"rlhub": "rlhub", "rlhub/envs": "envs", "rlhub/rewards": "rewards"}
"""Where rlhub's sources sit in the image, and in this checkout (pyproject's package-dir)."""
HEALTH_TIMEOUT = 60.0

_PROBE = r"""
import json, sys
import httpx
from rlhub.env.registry import get_spec
from rlhub.serve.server import BackgroundServer, create_app
spec = get_spec(sys.argv[1])
with BackgroundServer(create_app(spec.make, spec.id)) as server:
    url = f"{server.url}/{spec.id}"
    httpx.get(f"{url}/info").raise_for_status()
    example = httpx.post(f"{url}/examples", json={"limit": 1}).json()["examples"][0]
    gold = httpx.post(f"{url}/gold", json={"example": example}).json()["completion"]
    httpx.post(f"{url}/score", json={"completions": [gold], "examples": [example]}).raise_for_status()
    session = httpx.post(f"{url}/sessions", json={"seed": 0}).json()["session_id"]
    httpx.post(f"{url}/sessions/{session}/step", json={"action": "x"}).raise_for_status()
print(json.dumps(sorted({getattr(m, "__file__", None) or "" for m in list(sys.modules.values())})))
"""


def _docker():
    try:
        import docker
    except ImportError as exc:
        raise RLHubError("env containers need the docker SDK: pip install -e '.[docker]'") from exc
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise RLHubError(f"no Docker engine is reachable ({exc}); start one (scripts/test-docker.sh does)") from exc
    return client


def base_image(client) -> str:
    """The Python base image: $RLHUB_SANDBOX_IMAGE, else the newest ``rlhub-python`` image."""
    named = os.environ.get("RLHUB_SANDBOX_IMAGE")
    if named:
        return named
    images = sorted(client.images.list(name=BASE_REPOSITORY), key=lambda image: image.attrs["Created"])
    if not images or not images[-1].tags:
        raise RLHubError(f"no {BASE_REPOSITORY} image; build it: python3 scripts/docker_images.py")
    return images[-1].tags[0]


def _site_files(env_id: str) -> dict[str, Path]:
    """{path in the image's site folder: host file} for what serving ``env_id`` imports."""
    probe = subprocess.run([sys.executable, "-c", _PROBE, env_id], capture_output=True, text=True, timeout=300)
    if probe.returncode != 0:
        raise RLHubError(f"serving {env_id} failed while finding its files: {probe.stderr.strip()[-1500:]}")
    loaded = [Path(p) for p in json.loads(probe.stdout.splitlines()[-1]) if p]
    checkout = Path(__file__).resolve().parents[2]
    stdlib = Path(os.__file__).resolve().parent
    roots = [Path(p).resolve() for p in sys.path if p and Path(p).is_dir() and Path(p).resolve() != stdlib]
    files: dict[str, Path] = {}
    tops: set[Path] = set()
    for path in (p.resolve() for p in loaded):
        if path.is_relative_to(checkout):
            continue  # rlhub's own sources: added whole below
        if path.is_relative_to(stdlib) and "site-packages" not in path.parts:
            continue  # the image's Python has its own standard library
        root = next((r for r in roots if path.is_relative_to(r) and r != checkout), None)
        if root is not None:
            tops.add(root / path.relative_to(root).parts[0])
    for top in sorted(tops):
        paths = sorted(top.rglob("*")) if top.is_dir() else [top]
        libs = top.parent / f"{top.name}.libs"  # manylinux wheels keep their shared libraries here
        if libs.is_dir():
            paths += sorted(libs.rglob("*"))
        for path in paths:
            if path.is_file() and "__pycache__" not in path.parts:
                files[str(path.relative_to(top.parent))] = path
    for inside, outside in PACKAGE_DIRS.items():
        for path in sorted((checkout / outside).rglob("*.py")):
            files[f"{inside}/{path.relative_to(checkout / outside)}"] = path
    files["registry.yaml"] = checkout / "registry.yaml"
    return files


def _system_libraries(files: dict[str, Path]) -> dict[str, str | Path]:
    """{path in the image: host file, or a symlink's target} for the shared libraries the site's
    extension modules load from the system (``libstdc++`` for numpy, say), spelled under /usr."""
    found: dict[str, str | Path] = {}
    for path in {p for p in files.values() if re.search(r"\.so(\.|$)", p.name)}:
        listing = subprocess.run(["ldd", str(path)], capture_output=True, text=True).stdout
        for library in re.findall(r"=> (/\S+) \(0x", listing):
            if library.startswith(str(path.parent)) or ".libs/" in library:
                continue  # shipped inside the wheel, copied with it
            real = Path(library).resolve()
            found[_under_usr(real)] = real
            if Path(library).name != real.name:
                found[_under_usr(Path(library))] = real.name
    return found


def _under_usr(path: Path) -> str:
    """``path`` relative to the root, with merged /usr's /lib and /lib64 spelled under /usr."""
    return re.sub(r"^/(lib|lib64)/", r"/usr/\1/", str(path)).lstrip("/")


def _context(base: str, env_id: str, files: dict[str, Path]) -> tuple[bytes, str]:
    """A reproducible build context (Dockerfile, site files, system libraries) and its content hash."""
    dockerfile = (
        f"FROM {base}\n"
        "COPY root /\n"
        f"COPY site /{SITE}\n"
        f"ENV PYTHONPATH=/{SITE} HOME=/tmp\n"
        f'LABEL rlhub.env="{env_id}"\n'
        f'ENTRYPOINT ["python3", "-m", "rlhub", "serve", "{env_id}"]\n'
    ).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        entries = [("Dockerfile", dockerfile)] + [(f"site/{k}", v.read_bytes()) for k, v in sorted(files.items())]
        for name, target in sorted(_system_libraries(files).items()):
            if isinstance(target, str):
                info = tarfile.TarInfo(f"root/{name}")
                info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, 0
                tar.addfile(info)
            else:
                entries.append((f"root/{name}", target.read_bytes()))
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue(), hashlib.sha256(buffer.getvalue()).hexdigest()[:12]


def image_name(env_id: str) -> str:
    return "rlhub-env-" + re.sub(r"[^a-z0-9_.-]", "-", env_id.lower())


def build(env_id: str) -> str:
    """Build (or find, if its contents are unchanged) the image serving ``env_id``; return its tag."""
    import docker

    from rlhub.env.registry import get_spec

    spec = get_spec(env_id)
    client = _docker()
    context, digest = _context(base_image(client), spec.id, _site_files(spec.id))
    tag = f"{image_name(spec.id)}:{digest}"
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.build(fileobj=io.BytesIO(context), custom_context=True, tag=tag, rm=True, pull=False)
    except docker.errors.BuildError as exc:
        raise RLHubError(f"building {tag} failed: {exc}") from exc
    return tag


@contextmanager
def running(env_id: str, *, port: int, token: str | None = None, image: str | None = None):
    """Run the env's image (built if needed), wait until it answers, yield its URL; remove it after."""
    import httpx

    client = _docker()
    tag = image or build(env_id)
    command = ["--host", "127.0.0.1", "--port", str(port)]
    container = client.containers.run(
        tag,
        command,
        detach=True,
        network_mode="host",
        read_only=True,
        tmpfs={"/tmp": "rw,nosuid,nodev,size=256m"},
        user="65534:65534",
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        mem_limit="2g",
        pids_limit=256,
        environment={"RLHUB_ENV_TOKEN": token} if token else {},
        labels={"rlhub.env": env_id},
    )
    url = f"http://127.0.0.1:{port}/{env_id}"
    try:
        deadline = time.monotonic() + HEALTH_TIMEOUT
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            container.reload()
            if container.status == "exited" or time.monotonic() > deadline:
                logs = container.logs().decode(errors="replace")[-1500:]
                raise RLHubError(f"the container serving {env_id} did not answer at {url}: {logs}")
            time.sleep(0.2)
        yield url
    finally:
        container.remove(force=True)


@contextmanager
def serving(env_id: str, *, url: str | None = None, container: bool = False):
    """Where a run reaches its env: yields ``url``, or a started container's URL, or None (in-process).

    What ``env.url`` and ``env.container`` in a recipe do; a container is stopped when the block ends.
    """
    if not container:
        yield url
        return
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with running(env_id, port=port) as served_url:
        yield served_url
