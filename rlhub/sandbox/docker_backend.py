"""The docker backend: each worker is a long-lived container whose main process is the zygote.

The container has no network, a read-only root, private /tmp and /dev/shm, no capabilities but
the few the zygote needs (its children drop them with their uid), no-new-privileges, and caps on
memory, processes and CPU. The zygote is the container's PID 1, so, as under bwrap, programs can't
signal it and it kills whatever a program leaves with ``kill(-1)``. The host talks to it over the
container's attached stdin/stdout.

How this is tested: the main suite checks the container settings (``container_kwargs``), the
RLHubError when no engine answers, and ``DockerChannel`` against an emulated attach socket. The
docker tier (``scripts/test-docker.sh``: Docker 20.10 from Debian, a Python image built locally by
``scripts/docker_images.py``) runs the sandbox's behaviour tests and the attacks the bwrap backend
contains against a real engine, plus the container's own cgroup memory cap.
"""

from __future__ import annotations

import json
import logging
import os
import select
import socket
import struct
import time
from collections.abc import Callable

from rlhub.errors import RLHubError
from rlhub.sandbox._protocol import FrameBuffer, encode_frame
from rlhub.sandbox.channel import DIAGNOSTICS_CHARS, Channel, WorkerLost
from rlhub.sandbox.config import BASE_ENV, IMAGE_PYTHON_FLAGS, ZYGOTE_PATH, next_worker_uid, zygote_config

logger = logging.getLogger("rlhub.sandbox")

DEFAULT_IMAGE = "python:3.11-slim"
IMAGE_VARIABLE = "RLHUB_SANDBOX_IMAGE"
"""Names the image used where none is given (scripts/docker_images.py builds one locally)."""
ZYGOTE_CAPS = ["SETUID", "SETGID", "KILL", "DAC_OVERRIDE", "FOWNER", "IPC_OWNER"]
DOCKER_STREAM_HEADER = struct.Struct(">BxxxL")  # stream id (1 stdout, 2 stderr), 3 pad bytes, size
DOCKER_STDOUT, DOCKER_STDERR = 1, 2


class DockerBackend:
    """Workers are containers started from ``image`` through the docker SDK.

    Args:
        image: An image with ``python3`` (3.9 or newer) on its PATH; it is not pulled. By default
            $RLHUB_SANDBOX_IMAGE, else ``DEFAULT_IMAGE``.
        max_processes: RLIMIT_NPROC for programs; the container's pids limit is a little higher.
        container_memory_mb: Memory cap of each container (zygote plus the running program).
        cpus: CPU cap of each container.
        tmpfs_mb: Size of the container's /tmp.
        client: A ``docker.DockerClient``; by default ``docker.from_env()``.

    Raises:
        RLHubError: The docker SDK is missing, no engine answers, or the image is absent.
    """

    name = "docker"
    isolated = True

    def __init__(
        self,
        image: str | None = None,
        *,
        max_processes: int = 64,
        container_memory_mb: int = 2048,
        cpus: float = 1.0,
        tmpfs_mb: int = 256,
        client=None,
    ) -> None:
        try:
            import docker
            import docker.errors  # also refuses a stray folder named docker/ on sys.path that is not the SDK
        except ImportError as exc:
            raise RLHubError("the docker sandbox backend needs the docker SDK: pip install docker") from exc
        if image is None or image == DEFAULT_IMAGE:
            image = os.environ.get(IMAGE_VARIABLE) or DEFAULT_IMAGE
        self.image = image
        self.max_processes = max_processes
        self.container_memory_mb = container_memory_mb
        self.cpus = cpus
        self.tmpfs_mb = tmpfs_mb
        try:
            self._client = client if client is not None else docker.from_env()
            self._client.ping()
        except (docker.errors.DockerException, OSError) as exc:
            raise RLHubError(
                f"no Docker engine is reachable ({exc}); start one (and check DOCKER_HOST), or use backend='bwrap'"
            ) from exc
        try:
            self._client.images.get(image)
        except docker.errors.ImageNotFound as exc:
            raise RLHubError(
                f"docker image {image!r} is not present; build one locally (python3 scripts/docker_images.py) "
                f"and name it in ${IMAGE_VARIABLE}, or run: docker pull {image}"
            ) from exc

    def container_kwargs(self, uid: int) -> dict:
        """Keyword arguments for ``client.containers.create`` for one worker running as ``uid``."""
        config = zygote_config(
            uid=uid,
            max_processes=self.max_processes,
            workdir="/tmp/work",
            scratch=["/tmp", "/dev/shm"],
            private_ipc=True,
            site_packages=[],
        )
        return {
            "image": self.image,
            "command": ["python3", *IMAGE_PYTHON_FLAGS, "-c", ZYGOTE_PATH.read_text(), json.dumps(config)],
            "detach": True,
            "stdin_open": True,
            "tty": False,
            "init": False,  # the zygote must be PID 1
            "network_mode": "none",
            "ipc_mode": "private",
            "read_only": True,
            "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={self.tmpfs_mb}m,mode=1777"},
            "mem_limit": f"{self.container_memory_mb}m",
            "memswap_limit": f"{self.container_memory_mb}m",
            "pids_limit": self.max_processes + 16,
            "nano_cpus": int(self.cpus * 1e9),
            "cap_drop": ["ALL"],
            "cap_add": list(ZYGOTE_CAPS),
            "security_opt": ["no-new-privileges"],
            "user": "0:0",
            "working_dir": "/",
            "environment": dict(BASE_ENV),
            "labels": {"rlhub.sandbox": "worker"},
        }

    def start(self) -> Channel:
        container = self._client.containers.create(**self.container_kwargs(next_worker_uid()))
        try:
            # Attach before start: the ready message is written as soon as the zygote runs.
            sock = container.attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            container.start()
        except BaseException:
            container.remove(force=True)
            raise
        return DockerChannel(sock, on_close=lambda: _remove(container))

    def close(self) -> None:
        self._client.close()


def _remove(container) -> None:
    """Remove a worker's container (killing its processes); one the engine lost is only logged."""
    import docker

    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.DockerException as exc:
        logger.warning("rlhub.sandbox: could not remove docker worker %s: %s", container.id, exc)


class DockerChannel:
    """A zygote behind a docker attach socket, framed like ``PipeChannel``.

    Without a TTY, docker multiplexes the container's stdout and stderr on the one stream: each
    chunk has an 8-byte header (stream id, 3 pad bytes, big-endian length) before its bytes.

    Args:
        sock: What ``attach_socket`` returned: a ``socket.SocketIO`` over the engine's unix socket,
            or a socket-like object with ``sendall``/``recv``/``settimeout``.
        on_close: Called after the socket is closed (removes the container).
    """

    def __init__(self, sock, on_close: Callable[[], None] | None = None) -> None:
        self._attached = sock  # keeps the HTTP response (and so the connection) alive
        self._sock = getattr(sock, "_sock", sock)
        self._on_close = on_close
        self._multiplexed = bytearray()
        self._frames = FrameBuffer()
        self._stderr = bytearray()

    def send(self, message: dict, deadline: float) -> None:
        try:
            self._sock.settimeout(max(0.001, deadline - time.monotonic()))
            self._sock.sendall(encode_frame(message))
        except TimeoutError as exc:
            raise WorkerLost("timeout", "the worker stopped reading its requests") from exc
        except OSError as exc:
            raise WorkerLost("killed", f"the container's stdin is gone: {exc}") from exc

    def recv(self, deadline: float) -> dict:
        while (message := self._frames.pop()) is None:
            try:
                self._sock.settimeout(max(0.001, deadline - time.monotonic()))
                chunk = self._sock.recv(1 << 20)
            except TimeoutError as exc:
                raise WorkerLost("timeout", "the worker did not answer in time") from exc
            except OSError as exc:
                raise WorkerLost("killed", f"the container's output is gone: {exc}") from exc
            if not chunk:
                raise WorkerLost("killed", "the container exited")
            self._demultiplex(chunk)
        return message

    def _demultiplex(self, chunk: bytes) -> None:
        self._multiplexed += chunk
        while len(self._multiplexed) >= DOCKER_STREAM_HEADER.size:
            stream, size = DOCKER_STREAM_HEADER.unpack_from(self._multiplexed)
            end = DOCKER_STREAM_HEADER.size + size
            if len(self._multiplexed) < end:
                return
            payload = bytes(self._multiplexed[DOCKER_STREAM_HEADER.size : end])
            del self._multiplexed[:end]
            if stream == DOCKER_STDOUT:
                self._frames.feed(payload)
            elif stream == DOCKER_STDERR:
                self._stderr = (self._stderr + payload)[-DIAGNOSTICS_CHARS:]

    def alive(self) -> bool:
        # A closed connection polls readable and peeks empty.
        readable, _, _ = select.select([self._sock], [], [], 0)
        return not readable or self._sock.recv(1, socket.MSG_PEEK) != b""

    def request_exit(self) -> None:
        """Nothing to do ahead: ``close`` removes the container, which ends the zygote."""

    def close(self, timeout: float) -> None:
        self._attached.close()
        self._sock.close()
        if self._on_close is not None:
            self._on_close()
            self._on_close = None

    def diagnostics(self) -> str:
        return self._stderr.decode("utf-8", "replace").strip()
