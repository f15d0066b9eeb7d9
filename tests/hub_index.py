"""A real package index for the hub's tests: a ``pypiserver`` on 127.0.0.1 with an upload password, and fresh
virtualenvs that see rlhub from the test's environment, so that only env packages are installed in them."""

from __future__ import annotations

import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest

USER, PASSWORD = "publisher", "s3cret-upload"


@pytest.fixture(scope="module", name="pypi")
def pypi_server(tmp_path_factory):
    """A pypiserver on a free port of 127.0.0.1 whose uploads need USER's password; its root URL."""
    from passlib.apache import HtpasswdFile

    root = tmp_path_factory.mktemp("pypi")
    htpasswd = HtpasswdFile(str(root / "htpasswd"), new=True)
    htpasswd.set_password(USER, PASSWORD)
    htpasswd.save()
    (root / "packages").mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "pypiserver", "run", "-i", "127.0.0.1", "-p", str(port), "-a", "update"]
    command += ["-P", str(root / "htpasswd"), "--disable-fallback", str(root / "packages")]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "simple/", timeout=2).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "pypiserver did not start"
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def fresh_venv(path: Path) -> Path:
    """A virtualenv whose interpreter also sees this environment's packages (rlhub included); its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(path)], check=True)
    python = path / "bin" / "python"
    # --system-site-packages reaches the base interpreter's packages; this environment's come through a .pth.
    base = sysconfig.get_paths()["purelib"]
    Path(venv_site(python), "rlhub_test_base.pth").write_text(f"import site; site.addsitedir({base!r})\n")
    return python


def venv_site(python: Path) -> Path:
    """The site-packages folder of the virtualenv whose interpreter is ``python``."""
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return Path(subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip())


def in_venv(python: Path, *args: str, env: dict, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python ARGS`` with the virtualenv's interpreter."""
    return subprocess.run([str(python), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
