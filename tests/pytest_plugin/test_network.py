"""The socket backstop refuses new connections to hosts that are not allowed, then restores."""

from __future__ import annotations

import asyncio
import http.client
import os
import socket
import tempfile
import threading

import pytest

from shadowguard.testing import NetworkBlock, ShadowConnectionBlocked
from tests.pytest_plugin.conftest import LoopbackServer


def _get(server: LoopbackServer) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", "/")
        return conn.getresponse().status
    finally:
        conn.close()


def test_unknown_http_client_never_reaches_the_server(loopback_server: LoopbackServer) -> None:
    """http.client to a loopback server is refused; the server sees no request."""
    with NetworkBlock() as block, pytest.raises(ShadowConnectionBlocked) as info:
        _get(loopback_server)
    assert loopback_server.hits == 0
    assert block.blocked == [loopback_server.address]
    assert loopback_server.address in str(info.value)
    assert "allow_hosts" in str(info.value)
    assert not isinstance(info.value, OSError)  # retry loops catching OSError cannot hide it
    assert _get(loopback_server) == 200  # restored: the same call now reaches the server
    assert loopback_server.hits == 1


@pytest.mark.parametrize(
    "allow",
    [["127.0.0.1"], ["localhost"], ["*"], ["{address}"], ["LOCALHOST:{port}"]],
)
def test_allowed_hosts_pass(loopback_server: LoopbackServer, allow: list[str]) -> None:
    entries = [a.format(address=loopback_server.address, port=loopback_server.port) for a in allow]
    with NetworkBlock(entries) as block:
        assert _get(loopback_server) == 200
    assert block.blocked == []
    assert loopback_server.hits == 1


def test_other_port_of_an_allowed_host_is_refused(loopback_server: LoopbackServer) -> None:
    with (
        NetworkBlock([f"127.0.0.1:{loopback_server.port + 1}"]),
        pytest.raises(ShadowConnectionBlocked),
    ):
        _get(loopback_server)
    assert loopback_server.hits == 0


def test_every_python_connect_path_is_refused(loopback_server: LoopbackServer) -> None:
    """Raw socket connect and connect_ex, create_connection, asyncio, other threads."""
    target = ("127.0.0.1", loopback_server.port)
    with NetworkBlock() as block:
        with socket.socket() as sock, pytest.raises(ShadowConnectionBlocked):
            sock.connect(target)
        with socket.socket() as sock, pytest.raises(ShadowConnectionBlocked):
            sock.connect_ex(target)
        with pytest.raises(ShadowConnectionBlocked):
            socket.create_connection(target, timeout=5)

        async def stream() -> None:
            await asyncio.open_connection(*target)

        with pytest.raises(ShadowConnectionBlocked):
            asyncio.run(stream())
        errors: list[BaseException] = []

        def in_thread() -> None:
            try:
                socket.create_connection(target, timeout=5)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=in_thread)
        thread.start()
        thread.join(5)
        assert [type(e) for e in errors] == [ShadowConnectionBlocked]
    assert len(block.blocked) == 5
    assert loopback_server.hits == 0
    with socket.create_connection(target, timeout=5):
        pass  # restored


def test_unix_sockets_are_refused_unless_listed() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "peer.sock")
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind(path)
            listener.listen()
            with (
                NetworkBlock() as block,
                socket.socket(socket.AF_UNIX) as client,
                pytest.raises(ShadowConnectionBlocked),
            ):
                client.connect(path)
            assert block.blocked == [f"unix socket {path!r}"]
            for allow in ([path], [tmp + "/"]):
                with NetworkBlock(allow), socket.socket(socket.AF_UNIX) as client:
                    client.connect(path)


def test_restores_socket_methods_exactly() -> None:
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex
    outer = NetworkBlock()
    with outer, NetworkBlock(["*"]):
        assert socket.socket.connect is not connect
    assert socket.socket.connect is connect
    assert socket.socket.connect_ex is connect_ex
    assert "connect" not in vars(socket.socket) or vars(socket.socket)["connect"] is connect


def test_malformed_allow_entry_names_the_accepted_forms() -> None:
    with pytest.raises(ValueError, match="host:port"):
        NetworkBlock(["example.org:http"])


def test_lifted_lets_only_the_current_thread_through(loopback_server: LoopbackServer) -> None:
    """The plugin reads a database it found mid-test; other threads stay blocked meanwhile."""
    errors: list[BaseException] = []

    def in_thread() -> None:
        try:
            _get(loopback_server)
        except BaseException as exc:
            errors.append(exc)

    with NetworkBlock() as block, block.lifted():
        assert _get(loopback_server) == 200
        thread = threading.Thread(target=in_thread)
        thread.start()
        thread.join(5)
    assert [type(e) for e in errors] == [ShadowConnectionBlocked]
    assert block.blocked == [loopback_server.address]  # only the other thread's attempt
    assert loopback_server.hits == 1
