"""Declared network: an isolated env package reaches exactly the TCP ``host:port`` pairs its manifest declares.

Real packages, pip-installed once per module, connect from their reward to echo servers on this host: a pair
declared as a loopback IP, as ``localhost``, or as a name (``echo.invalid:443``, which the test's resolver gives
the host and which the sandbox's /etc/hosts gives the sandbox) comes back echoed; any other address, port or
name is a named ``network`` violation and the server behind it sees no connection; a declared name that
resolves to this machine reaches nothing.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
from hub_packages import ATTACKS, declare_network, install_packages, write_package

import rlhub
from rlhub.env import registry
from rlhub.errors import RLHubError
from rlhub.hub import CapabilityViolation, egress, read_manifest
from rlhub.hub.sandbox import bwrap_problem

pytestmark = pytest.mark.skipif(bwrap_problem() is not None, reason=f"bubblewrap unusable: {bwrap_problem()}")
NAME, LOOP = "echo.invalid", "loop.invalid"
"""Declared host names no DNS knows: the test's resolver gives both the declared echo server on the host (for
NAME, as if it were another machine), the sandbox's /etc/hosts gives them the sandbox."""
RELAY_SOCKET = "/opt/rlhub/egress/0.sock"
"""The first route's unix socket as the sandbox sees it (code may connect to it, reaching only that route)."""
LIMIT, TRIES = 32, 40
"""The relay's connections at once (``egress.MAX_CONNECTIONS``), and how many the flooding package opens."""

ECHOED = '''

def echoed(address, line=b"ping\\n"):
    """Whether ``line`` comes back from ``address`` as the echo server answers it (False: closed, or reset)."""
    with socket.create_connection(address, timeout=10) as conn:
        try:
            conn.sendall(line)
            return conn.makefile("rb").readline() == b"echo:" + line
        except OSError:
            return False


def scores(completions, **rewards):
    return [Score(reward=rewards["correct"], rewards=rewards) for _ in completions]
'''
"""Helpers every network package's env module gets."""

FLOOD = f"""\
conns = []
for i in range({TRIES}):  # half through the sandbox's TCP relay, half straight to its unix socket
    conn = socket.socket(socket.AF_UNIX if i % 2 else socket.AF_INET, socket.SOCK_STREAM)
    conn.settimeout(10)
    try:  # past the bound the relay closes a connection at once: the send may already find it closed
        conn.connect({RELAY_SOCKET!r} if i % 2 else ('127.0.0.1', PLACES['port']))
        conn.sendall(b'ping\\n')
    except OSError:
        pass
    conns.append(conn)
answered = 0
for conn in conns:
    try:
        answered += conn.makefile('rb').readline() == b'echo:ping\\n'
    except OSError:
        pass
for conn in conns:
    conn.close()
return scores(completions, correct=float(answered))"""

ECHO_AT = "return scores(completions, correct=float(echoed(({host!r}, PLACES['port']))))"
PACKAGES = {
    # name: (declared network, what its reward does)
    "net-ip": (["127.0.0.1:{port}"], ECHO_AT.format(host="127.0.0.1")),
    "net-localhost": (["localhost:{port}"], ECHO_AT.format(host="localhost")),
    "net-name": (  # 1.0: echoed, and a name it did not declare resolves to nothing (no DNS inside)
        [f"{NAME}:443"],
        "try:\n    socket.getaddrinfo('undeclared.invalid', 443)\n    resolves = 1.0\nexcept socket.gaierror:\n"
        f"    resolves = 0.0\nreturn scores(completions, correct=float(echoed(({NAME!r}, 443))) - 2 * resolves)",
    ),
    "net-loop": ([LOOP + ":{port}"], ECHO_AT.format(host=LOOP)),
    "net-undeclared": (
        ["127.0.0.1:{port}"],
        "target = {'port': ('127.0.0.1', PLACES['other']), 'address': ('127.0.0.2', PLACES['port']),\n"
        "          'ipv6': ('::1', PLACES['port'])}[completions[0]]\n"
        "socket.create_connection(target, timeout=2)",
    ),
    "net-flood": (["127.0.0.1:{port}"], FLOOD),
    "net-import": (["127.0.0.1:{port}"], "pass"),
}  # fmt: skip
IMPORT_CONNECTS = """\
import socket
with socket.create_connection(("127.0.0.1", {port}), timeout=10) as conn:
    conn.sendall(b"imported\\n")
    conn.makefile("rb").readline()
"""
"""The ``__init__.py`` of ``net-import``: it reaches its declared pair when imported."""


class EchoServer:
    """A TCP server on ``host`` that answers each line with ``echo:`` and the line; it counts its connections and
    keeps the lines."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.listener = socket.create_server((host, 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.open = 0
        self.lines: list[bytes] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            with self._lock:
                self.connections += 1
                self.open += 1
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as lines:
            try:
                for line in lines:
                    self.lines.append(line)
                    conn.sendall(b"echo:" + line)
            except OSError:
                pass
        with self._lock:
            self.open -= 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.listener.close()


@pytest.fixture(scope="module")
def servers():
    """The declared echo server and another one, on a port nobody declares."""
    declared, other = EchoServer(), EchoServer()
    yield declared, other
    declared.close()
    other.close()


@pytest.fixture(scope="module")
def site(servers, tmp_path_factory):
    """The network packages (and the no-network attack package) pip-installed into one folder on sys.path."""
    declared, other = servers
    root = tmp_path_factory.mktemp("net")
    places = {"port": declared.port, "other": other.port}
    sources = []
    for name, (network, reward) in PACKAGES.items():
        init = IMPORT_CONNECTS.format(port=declared.port) if name == "net-import" else ""
        source = write_package(root, name, reward, places, extra=ECHOED, init=init, slug=name)
        declare_network(source, [pair.format(port=declared.port) for pair in network])
        sources.append(source)
    sources.append(write_package(root, "network", ATTACKS["network"], places))
    install_packages(sources, root / "site")
    os.chmod(root, 0o755)  # the sandbox's own uid reads the installed packages
    sys.path.insert(0, str(root / "site"))
    registry.clear_cache()
    registry.get_spec("net-ip-v0")  # every package's entries load now: net-import's import connects once here
    yield root
    sys.path.remove(str(root / "site"))
    registry.clear_cache()


@pytest.fixture
def host_resolves_names(monkeypatch, servers):
    """The host's resolver gives ``echo.invalid:443`` and ``loop.invalid`` the declared echo server (the sandbox
    cannot see this resolver)."""
    declared, _ = servers
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in (NAME, LOOP):
            host, port = declared.host, declared.port
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _score(env_id: str, completion: str = "1") -> dict:
    """The rewards ``env_id``'s package gives ``completion``, in a sandbox started and stopped for it."""
    env = rlhub.make(env_id)
    try:
        return env.score(completion, env.examples("train", limit=1)[0]).rewards
    finally:
        env.close()


def _relay_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("rlhub-egress")]


@pytest.mark.parametrize("package", ["net-ip", "net-localhost", "net-name"])
def test_a_declared_pair_is_reached_and_echoes(site, servers, host_resolves_names, monkeypatch, package):
    declared, other = servers
    # Here echo.invalid stands for a host elsewhere: the relay lets a name reach only other machines.
    monkeypatch.setattr(egress, "off_limits", lambda address: address != declared.host)
    before = declared.connections
    rewards = _score(f"{package}-v0")
    assert rewards["correct"] == 1.0, rewards
    assert declared.connections == before + 1 and other.connections == 0
    # Nothing of the relay outlives its sandbox: no thread, and the server's connection is closed.
    deadline = time.monotonic() + 5
    while (_relay_threads() or declared.open) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _relay_threads() == [] and declared.open == 0


def test_the_relay_runs_before_the_package_is_imported(site, servers, monkeypatch, tmp_path):
    declared, _ = servers
    declared.lines.clear()
    monkeypatch.setenv("RLHUB_CACHE", str(tmp_path))  # no cached entries: loading them imports the package
    registry.clear_cache()
    try:
        registry.get_spec("net-import-v0")
        assert declared.lines == [b"imported\n"]
        assert "correct" in _score("net-import-v0")  # its env server imports it again
        assert declared.lines == [b"imported\n"] * 2
    finally:
        registry.clear_cache()


def test_a_declared_name_never_reaches_this_machines_loopback(site, servers, host_resolves_names):
    # A publisher who controls a name's DNS could point it at the trainer's own services: the relay refuses.
    declared, _ = servers
    before = declared.connections
    assert _score("net-loop-v0")["correct"] == 0.0
    assert declared.connections == before


@pytest.mark.parametrize(
    "address, off",
    [
        *[(a, True) for a in ("127.0.0.1", "10.0.0.8", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1")],
        *[(a, True) for a in ("0.0.0.0", "224.0.0.1", "::1", "fe80::1%eth0", "fd00::2", "::ffff:10.0.0.1")],
        *[(a, False) for a in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111")],
    ],
)
def test_a_declared_name_reaches_only_public_addresses_of_other_machines(address, off):
    assert egress.off_limits(address) is off


@pytest.mark.parametrize("target", ["port", "address", "ipv6"])
def test_an_undeclared_connect_is_a_named_violation_and_reaches_nothing(site, servers, target):
    declared, other = servers
    before = declared.connections
    with pytest.raises(CapabilityViolation, match=r"\(network\): socket\.connect .*declared network") as err:
        _score("net-undeclared-v0", target)
    assert err.value.capability == "network"
    assert f"127.0.0.1:{declared.port}" in str(err.value)  # it names what the package did declare
    assert other.connections == 0 and declared.connections == before


def test_a_package_without_declared_network_still_gets_none(site, servers):
    declared, _ = servers
    before = declared.connections
    with pytest.raises(CapabilityViolation, match=r"\(network\): .*declared network \(TCP only\): none"):
        _score("attack-network-v0")
    assert declared.connections == before


def test_the_relay_bounds_connections_at_once_even_past_its_inside_relay(site, servers):
    assert egress.MAX_CONNECTIONS == LIMIT
    declared, _ = servers
    before = declared.connections
    assert _score("net-flood-v0")["correct"] == LIMIT
    assert declared.connections - before == LIMIT


@pytest.mark.parametrize(
    "entry, problem",
    [
        ("10.0.0.5:80", r"outside loopback, .*declare the host's public name instead"),
        ("127.0.0.1:0", r"port 0: use a port from 1 to 65535"),
        ("127.1:80", r"not an IPv4 address"),
        ("[::1]:80", r"not host:port: .*IPv6 is not supported"),
        ("-bad-.example.com:443", r"not a valid host name"),
    ],
)
def test_the_manifest_refuses_what_the_relay_cannot_reach_naming_the_fix(tmp_path, entry, problem):
    path = tmp_path / "rlhub.toml"
    path.write_text(f'envs = ["a-v0"]\nlicense = "MIT"\n[capabilities]\nnetwork = ["{entry}"]\n')
    expected = rf"manifest key 'capabilities.network': '{re.escape(entry)}' .*{problem}"
    with pytest.raises(RLHubError, match=expected) as err:
        read_manifest(path)
    assert "\n" not in str(err.value)
    path.write_text('envs = ["a-v0"]\nlicense = "MIT"\n[capabilities]\nnetwork = ["localhost:8000", "127.0.0.9:22"]\n')
    assert read_manifest(path).capabilities.network == ("localhost:8000", "127.0.0.9:22")


def test_a_relay_leaves_no_socket_file_or_folder(site):
    env = rlhub.make("net-ip-v0")
    folder = Path(env.sandbox.plan.folder)
    assert (folder / "egress" / "0.sock").exists()
    env.close()
    assert not folder.exists() and _relay_threads() == []
