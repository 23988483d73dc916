"""The network backstop of shadow tests: refuse new outbound connections at the socket.

Every client written in Python (``http.client``, ``urllib3``, ``httpx``, ``asyncpg``,
asyncio streams, a raw socket) ends in ``socket.socket.connect`` or ``connect_ex``, so a
patch there sees the connections of clients shadowguard has no guard for. Clients written
in C (libpq, librdkafka) open their sockets below Python and are not seen here.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import socket
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from shadowguard.contract import Patches
from shadowguard.errors import ShadowSideEffectBlocked

__all__ = ["NetworkBlock", "ShadowConnectionBlocked", "endpoint_of_url"]

_counter = itertools.count(1)


class ShadowConnectionBlocked(ShadowSideEffectBlocked):
    """A shadow test opened a connection to a host that is not allowed.

    Not an ``OSError`` on purpose: client retry loops catch ``OSError`` and would hide it.
    """

    __module__ = "shadowguard.testing"  # its public home, shown in pytest's report

    def __init__(self, host: str) -> None:
        self.host = host
        super().__init__(
            f"outbound connection to {host} during a shadow test",
            remedy=(
                "It is neither a configured database nor an allowed host. If the connection "
                f"is safe, allow it: @pytest.mark.shadow(allow_hosts=[{host!r}]) or the "
                "shadowguard_allow_hosts ini option; otherwise guard the client that made it"
            ),
        )


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _split(entry: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, int(port)
    return entry, None


def _addresses(host: str) -> set[str]:
    if _is_ip(host):
        return {str(ipaddress.ip_address(host))}
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return set()


def endpoint_of_url(url: Any) -> str | None:
    """``host:port`` (or a unix socket directory) of an SQLAlchemy URL, or None."""
    host = url.host or url.query.get("host")
    if isinstance(host, tuple):
        host = host[0] if host else None
    if not host:
        return None
    if str(host).startswith("/"):
        return str(host).rstrip("/") + "/"
    port = url.port
    if port is None:
        port = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433}.get(
            url.get_backend_name()
        )
    host = f"[{host}]" if ":" in str(host) else host
    return f"{host}:{port}" if port else str(host)


class NetworkBlock:
    """Refuse new outbound connections except to ``allow`` while active (process-wide).

    ``allow`` entries: ``"host"`` (any port), ``"host:port"``, ``"[::1]:port"``, a unix
    socket path (a trailing ``/`` allows every socket in that directory), or ``"*"``.
    Host names are resolved once, when the block is created. Loopback and unix sockets are
    refused unless allowed: a local broker or mail relay is as real as a remote one.
    Every refused host is listed in ``blocked`` even if the caller swallowed the error.
    """

    def __init__(self, allow: Iterable[str] = ()) -> None:
        self.blocked: list[str] = []
        self._lock = threading.Lock()
        self._lifted = threading.local()
        self._all = False
        self._names: set[tuple[str, int | None]] = set()
        self._ips: set[tuple[str, int | None]] = set()
        self._paths: set[str] = set()
        for raw in allow:
            entry = str(raw).strip()
            if not entry:
                continue
            if entry == "*":
                self._all = True
            elif entry.startswith("/") or entry.startswith("\0"):
                self._paths.add(entry)
            else:
                try:
                    host, port = _split(entry)
                except ValueError:
                    raise ValueError(
                        f"shadowguard allow_hosts entry {entry!r} is malformed: accepted are "
                        "'host', 'host:port', '[v6addr]:port', a unix socket path, or '*'"
                    ) from None
                self._names.add((host.lower(), port))
                self._ips.update((ip, port) for ip in _addresses(host))
        self._patches = Patches(f"shadowguard.network_block#{next(_counter)}")

    def allows(self, family: int, address: Any) -> bool:
        """Would a connection of ``family`` to ``address`` be let through?"""
        if self._all:
            return True
        if family == getattr(socket, "AF_UNIX", object()):
            path = address.decode(errors="replace") if isinstance(address, bytes) else address
            path = str(path)
            return any(path == p or (p.endswith("/") and path.startswith(p)) for p in self._paths)
        if family not in (socket.AF_INET, socket.AF_INET6):
            return True  # netlink and friends talk to the kernel, not to a peer
        host, port = str(address[0]), int(address[1])
        if any((h, p) in self._names for h in (host.lower(),) for p in (port, None)):
            return True
        ips = _addresses(host)
        if any(ip.startswith("::ffff:") for ip in ips):
            ips |= {ip.removeprefix("::ffff:") for ip in ips}
        return any((ip, p) in self._ips for ip in ips for p in (port, None))

    def _describe(self, family: int, address: Any) -> str:
        if family == getattr(socket, "AF_UNIX", object()):
            return f"unix socket {address!r}"
        host, port = str(address[0]), address[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @contextlib.contextmanager
    def lifted(self) -> Iterator[None]:
        """Let the current thread's connections through for the block; other threads stay
        blocked (the pytest plugin reads a database it found in the middle of a test)."""
        self._lifted.on = True
        try:
            yield
        finally:
            self._lifted.on = False

    def _refused(self, family: int, address: Any) -> bool:
        return not self.allows(family, address) and not getattr(self._lifted, "on", False)

    def _refuse(self, family: int, address: Any) -> ShadowConnectionBlocked:
        host = self._describe(family, address)
        with self._lock:
            self.blocked.append(host)
        return ShadowConnectionBlocked(host)

    def install(self) -> None:
        """Start refusing connections; :meth:`uninstall` restores ``socket.socket``."""
        if self._patches:
            return
        original_connect = socket.socket.connect
        original_connect_ex = socket.socket.connect_ex
        block = self

        def connect(sock: socket.socket, address: Any) -> None:
            __tracebackhide__ = True
            if block._refused(sock.family, address):
                raise block._refuse(sock.family, address)
            return original_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> int:
            __tracebackhide__ = True
            if block._refused(sock.family, address):
                raise block._refuse(sock.family, address)
            return original_connect_ex(sock, address)

        self._patches.setattr(socket.socket, "connect", connect)
        self._patches.setattr(socket.socket, "connect_ex", connect_ex)

    def uninstall(self) -> None:
        self._patches.restore()

    def __enter__(self) -> NetworkBlock:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.uninstall()
