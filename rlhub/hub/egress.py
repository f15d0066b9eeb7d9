"""Declared network for an isolated env package: TCP to exactly the ``host:port`` pairs its manifest lists.

The sandbox keeps a network namespace of its own, with only its loopback; nothing in it can route anywhere. Each
declared pair is a :class:`Route`, and a connection to it crosses three hops::

    package --TCP--> inside relay, listening on the route's loopback address and port in the sandbox
            --unix socket (a file the host made, bound into the sandbox)-->
            host relay --TCP--> the declared host:port, the name resolved on the host

Inside, a loopback IP (``127.0.0.1:8000``) listens at itself, ``localhost`` at 127.0.0.1, and each declared
host name at a loopback address of its own (127.0.0.2, 127.0.0.3, ...) that the sandbox's generated
``/etc/hosts`` gives it, so ``getaddrinfo`` of a declared name works inside with no DNS (its ``nsswitch.conf``
reads only that file). The host relay takes the route from the socket a connection arrived on, never from the
sandbox: whatever runs inside, even code that skips the inside relay and connects to the unix socket itself,
reaches the declared pairs and nothing else. A declared name reaches the public addresses it resolves to on the
host, never this machine or a private or link-local network (:func:`off_limits`): its publisher may control its
DNS. A declared loopback IP or ``localhost`` reaches this machine. The audit hook in ``_server.py`` names every
other connect a ``network`` violation.

Why a relay rather than the host's network: sharing the host's network namespace would let the package reach
every address the trainer can (the metadata service, the cluster, the trainer's own servers); a filter on it
would need privileges and rules that differ per machine. The relay needs neither. Each side is one thread
(:class:`Splicer`; the host adds a short-lived one per connection it is making, as resolving a name blocks),
with at most ``MAX_CONNECTIONS`` connections at once per sandbox. Bytes pass unchanged, so TLS to a declared
name verifies as it would outside.

Not supported: UDP (so no DNS inside: only declared names resolve), IP addresses outside 127.0.0.0/8 and IPv6
addresses as literals (declare the host's name instead), hosts on a private network (run such a package
trusted, in-process), and connection errors as such: the host connects only after the sandbox's connect
succeeded, so an unreachable or refused host looks like a connection closed at once.

Standard library only: ``_server.py`` loads this file inside the sandbox by its path, before any package import.
"""

from __future__ import annotations

import ipaddress
import os
import selectors
import socket
import threading
from collections.abc import Callable
from typing import NamedTuple

MAX_CONNECTIONS = 32
"""Connections open at once through one sandbox's relay; one more is closed as soon as it is accepted."""
CONNECT_SECONDS = 10.0
"""How long the host relay tries to reach a declared host (resolving its name included)."""
CHUNK = 64 * 1024
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
HOSTS_FILE = "hosts"
NSSWITCH_FILE = "nsswitch.conf"
NSSWITCH = "passwd: files\ngroup: files\nhosts: files\n"
"""The sandbox's ``/etc/nsswitch.conf`` when it has declared network: names come from its ``/etc/hosts`` alone."""
BACKLOG = 4 * MAX_CONNECTIONS
"""Connections a listener queues before the relay accepts them: more than the bound, so that one past the bound is
accepted and closed at once (what the env's code sees) rather than refused by a full queue on a busy machine."""


class Route(NamedTuple):
    """One declared ``host:port`` and where the sandbox reaches it."""

    host: str
    """The host as declared: a name, ``localhost`` or a loopback IP; the host relay connects to it."""
    port: int
    address: str
    """The loopback address the inside relay listens on (with ``port``)."""
    socket: str
    """The unix socket's file name, in the folder the host binds into the sandbox."""


def literal_ip(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address ``host`` spells, None for a name (``localhost`` is a name)."""
    try:
        return ipaddress.IPv4Address(host)
    except ValueError:
        return None


def routes(network: tuple[str, ...]) -> list[Route]:
    """The routes for a manifest's ``network`` entries (already validated: a host name, ``localhost`` or an
    address in 127.0.0.0/8, then a port); a second entry that lands on the same address and port is dropped.

    >>> [tuple(r) for r in routes(("api.example.com:443", "127.0.0.1:8000", "localhost:8000"))]
    [('127.0.0.1', 8000, '127.0.0.1', '0.sock'), ('api.example.com', 443, '127.0.0.2', '1.sock')]
    """
    pairs = [(host.lower(), int(port)) for host, _, port in (entry.rpartition(":") for entry in network)]
    taken = {str(literal_ip(host)) for host, _ in pairs if literal_ip(host)} | {"127.0.0.1"}
    spare = (str(LOOPBACK[i]) for i in range(2, LOOPBACK.num_addresses - 1) if str(LOOPBACK[i]) not in taken)
    addresses = {"localhost": "127.0.0.1"}
    found: dict[tuple[str, int], tuple[str, int]] = {}
    for host, port in sorted(pairs, key=lambda pair: (literal_ip(pair[0]) is None, pair)):
        if host not in addresses:
            addresses[host] = host if literal_ip(host) else next(spare)
        found.setdefault((addresses[host], port), (host, port))
    return [Route(host, port, address, f"{i}.sock") for i, ((address, _), (host, port)) in enumerate(found.items())]


def hosts_file(routes: list[Route]) -> str:
    """The sandbox's ``/etc/hosts``: ``localhost`` and each declared name at its loopback address (no IPv6, so
    a name never resolves to an address nothing listens on)."""
    names = {"localhost": "127.0.0.1"} | {r.host: r.address for r in routes if not literal_ip(r.host)}
    return "".join(f"{address} {name}\n" for name, address in names.items())


class Splicer:
    """One thread that accepts connections and copies bytes both ways between pairs of sockets.

    Each listener has an ``on_accept(conn)`` that runs on the thread and must end in :meth:`splice` (conn and
    its other end) or :meth:`drop` (conn), now or later from another thread. At most ``limit`` connections are
    accepted or spliced at once; one more is closed as soon as it is accepted. A side that ends its sending is
    passed on as such (half-close); an error on either side closes both.

    Args:
        name: The thread's name.
        limit: Connections at once.
    """

    def __init__(self, name: str, limit: int = MAX_CONNECTIONS) -> None:
        self.limit = limit
        self._selector = selectors.DefaultSelector()
        self._wake, self._waker = socket.socketpair()
        self._selector.register(self._wake, selectors.EVENT_READ)
        self._lock = threading.Lock()
        self._arrived: list[tuple[socket.socket, socket.socket]] = []
        self._in_use = 0
        self._closed = False
        self._listeners: list[socket.socket] = []
        self._pairs: set[_Pair] = set()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def listen(self, listener: socket.socket, on_accept: Callable[[socket.socket], None]) -> None:
        """Accept on ``listener`` (the splicer closes it) once started."""
        listener.setblocking(False)
        self._listeners.append(listener)
        self._selector.register(listener, selectors.EVENT_READ, on_accept)

    def start(self) -> Splicer:
        self._thread.start()
        return self

    def splice(self, conn: socket.socket, other: socket.socket) -> None:
        """Copy bytes between an accepted ``conn`` and its ``other`` end until both are done (any thread)."""
        with self._lock:
            if not self._closed:
                self._arrived.append((conn, other))
                self._waker.send(b"\0")
                return
        conn.close()
        other.close()

    def drop(self, conn: socket.socket) -> None:
        """Close an accepted ``conn`` that has no other end (any thread)."""
        conn.close()
        with self._lock:
            self._in_use -= 1

    def close(self) -> None:
        """Close every listener and connection and end the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._waker.send(b"\0")
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        elif not self._thread.is_alive():
            self._shut()

    def _run(self) -> None:
        try:
            while not self._closed:
                for key, events in self._selector.select():
                    if key.fileobj is self._wake:
                        self._wake.recv(4096)
                    elif isinstance(key.data, _Pair):
                        if key.data.closed:  # ended by its other socket, earlier in this batch
                            continue
                        key.data.ready(key.fileobj, events)
                        if key.data.done:
                            self._end(key.data)
                    else:
                        self._accept(key.fileobj, key.data)
                with self._lock:
                    arrived, self._arrived = self._arrived, []
                for conn, other in arrived:
                    pair = _Pair(self._selector, conn, other)
                    self._pairs.add(pair)
        finally:
            self._shut()

    def _accept(self, listener: socket.socket, on_accept) -> None:
        try:
            conn, _ = listener.accept()
        except OSError:  # the connecting side gave up already
            return
        with self._lock:
            full = self._in_use >= self.limit
            self._in_use += not full
        if full:
            conn.close()
            return
        try:
            on_accept(conn)
        except (OSError, RuntimeError):  # no other end, or no thread to make it on
            self.drop(conn)

    def _end(self, pair: _Pair) -> None:
        pair.close()
        self._pairs.discard(pair)
        with self._lock:
            self._in_use -= 1

    def _shut(self) -> None:
        with self._lock:
            self._closed = True
            arrived, self._arrived = self._arrived, []
        for pair in list(self._pairs):
            pair.close()
        for sock in [*self._listeners, *(s for pair in arrived for s in pair), self._wake, self._waker]:
            sock.close()
        self._pairs.clear()
        self._selector.close()


class _Pair:
    """Two connected sockets and the bytes read from each that the other has not taken yet."""

    def __init__(self, selector: selectors.BaseSelector, a: socket.socket, b: socket.socket) -> None:
        self.selector = selector
        self.other = {a: b, b: a}
        self.unsent = {a: b"", b: b""}  # read from the key, waiting to be sent to the other
        self.finished: set[socket.socket] = set()  # sides whose sending has ended
        self.done = self.closed = False
        for sock in (a, b):
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ, self)

    def ready(self, sock: socket.socket, events: int) -> None:
        other = self.other[sock]
        try:
            if events & selectors.EVENT_READ and not self.unsent[sock]:
                data = sock.recv(CHUNK)
                if data:
                    self.unsent[sock] = data
                else:  # its sending ended; nothing of it is unsent (nothing is read while some is)
                    self.finished.add(sock)
                    other.shutdown(socket.SHUT_WR)
            if events & selectors.EVENT_WRITE and self.unsent[other]:
                sent = sock.send(self.unsent[other])
                self.unsent[other] = self.unsent[other][sent:]
                if not self.unsent[other] and other in self.finished:
                    sock.shutdown(socket.SHUT_WR)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:  # reset, or the other side is gone: both go
            self.done = True
            return
        self.done = len(self.finished) == 2 and not any(self.unsent.values())
        if not self.done:
            for side in self.other:
                self._watch(side)

    def _watch(self, sock: socket.socket) -> None:
        events = selectors.EVENT_READ if sock not in self.finished and not self.unsent[sock] else 0
        events |= selectors.EVENT_WRITE if self.unsent[self.other[sock]] else 0
        registered = self.selector.get_map().get(sock)
        if registered is not None and not events:
            self.selector.unregister(sock)
        elif registered is not None and registered.events != events:
            self.selector.modify(sock, events, self)
        elif registered is None and events:
            self.selector.register(sock, events, self)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for sock in self.other:
            if self.selector.get_map().get(sock) is not None:
                self.selector.unregister(sock)
            sock.close()


class HostRelay:
    """The host side of a sandbox's declared network: a unix socket per route in ``folder``, each connection
    on it relayed to the route's host and port. Closed by :meth:`close`; a connection still being made then
    ends within ``CONNECT_SECONDS``, on a thread of its own that holds no other socket.

    Args:
        routes: The sandbox's routes.
        folder: Where the sockets go (bound into the sandbox); made readable by the sandbox's uid.
    """

    def __init__(self, routes: list[Route], folder: str) -> None:
        self.splicer = Splicer("rlhub-egress-host")
        try:
            for route in routes:
                listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                # Handed over before binding: the splicer closes it whatever fails next.
                self.splicer.listen(listener, lambda conn, route=route: self._connect(conn, route))
                listener.bind(os.path.join(folder, route.socket))
                os.chmod(os.path.join(folder, route.socket), 0o666)  # the sandbox's own uid connects
                listener.listen(BACKLOG)
        except BaseException:
            self.splicer.close()
            raise
        self.splicer.start()

    def _connect(self, conn: socket.socket, route: Route) -> None:
        def connect() -> None:
            try:
                upstream = connect_upstream(route)
            except OSError:
                self.splicer.drop(conn)
                return
            self.splicer.splice(conn, upstream)

        threading.Thread(target=connect, name=f"rlhub-egress-{route.host}:{route.port}", daemon=True).start()

    def close(self) -> None:
        self.splicer.close()


def connect_upstream(route: Route) -> socket.socket:
    """A connection to ``route``'s host and port. A declared loopback IP or ``localhost`` reaches this machine;
    a declared name reaches only the addresses it resolves to that are not :func:`off_limits`, so that a name
    whose DNS its publisher controls cannot point the relay at this machine or its network.

    Raises:
        OSError: No allowed address answered.
    """
    if route.host == "localhost" or literal_ip(route.host):
        return socket.create_connection((route.host, route.port), timeout=CONNECT_SECONDS)
    error = OSError(f"{route.host} resolves to no public address of another machine")
    for family, kind, proto, _, address in socket.getaddrinfo(route.host, route.port, type=socket.SOCK_STREAM):
        if off_limits(address[0]):
            continue
        upstream = socket.socket(family, kind, proto)
        try:
            upstream.settimeout(CONNECT_SECONDS)
            upstream.connect(address)
            return upstream
        except OSError as exc:
            upstream.close()
            error = exc
    raise error


def off_limits(address: str) -> bool:
    """Whether a declared name must not reach ``address``: anything but a global unicast address of another
    machine (loopback, private networks, link-local where cloud metadata services answer, this machine's own).

    >>> [off_limits(a) for a in ("127.0.0.1", "10.0.0.8", "169.254.169.254", "::ffff:192.168.0.1", "fe80::1")]
    [True, True, True, True, True]
    """
    ip = ipaddress.ip_address(address.partition("%")[0])
    ip = getattr(ip, "ipv4_mapped", None) or ip
    if not ip.is_global or ip.is_multicast:
        return True
    with socket.socket(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((str(ip), 9))  # a UDP connect sends nothing: it picks the route and its source address
        except OSError:
            return False  # no route to it: a connection fails by itself
        return ipaddress.ip_address(probe.getsockname()[0].partition("%")[0]) == ip  # routed to itself


def bind_inside(routes: list[dict]) -> list[socket.socket]:
    """In the sandbox, before its PID 1 forks (which may hold the right to bind ports below 1024): a listening
    TCP socket at each route's loopback address and port."""
    listeners = []
    for route in routes:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((route["address"], route["port"]))
        listener.listen(BACKLOG)
        listeners.append(listener)
    return listeners


def relay_inside(routes: list[dict], listeners: list[socket.socket], folder: str) -> Splicer:
    """In the sandbox: relay each connection to a route's listener through that route's unix socket in
    ``folder``; the running splicer."""
    splicer = Splicer("rlhub-egress")

    def forward(conn: socket.socket, path: str) -> None:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(path)
        except OSError:
            upstream.close()
            raise
        splicer.splice(conn, upstream)

    for route, listener in zip(routes, listeners):
        path = os.path.join(folder, route["socket"])
        splicer.listen(listener, lambda conn, path=path: forward(conn, path))
    return splicer.start()
