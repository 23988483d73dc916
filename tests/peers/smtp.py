"""Real SMTP servers on 127.0.0.1 (aiosmtpd) that keep every message they receive:
plain SMTP, SMTP over implicit TLS (for ``smtplib.SMTP_SSL``) and LMTP."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.peers.services import service_missing


@dataclass
class SmtpServer:
    """The server's address and the envelopes it accepted."""

    host: str
    port: int
    messages: list[Any] = field(default_factory=list)
    #: For a TLS server: a client context that trusts its certificate.
    client_context: ssl.SSLContext | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(state: SmtpServer, lmtp: bool = False, **options: Any) -> Iterator[SmtpServer]:
    try:
        from aiosmtpd.controller import Controller
        from aiosmtpd.lmtp import LMTP
    except ImportError:
        service_missing("aiosmtpd (the test SMTP server)")

    class LmtpController(Controller):
        def factory(self) -> Any:
            return LMTP(self.handler, **self.SMTP_kwargs)

    controller = (LmtpController if lmtp else Controller)(
        state, hostname=state.host, port=state.port, **options
    )
    controller.start()
    try:
        yield state
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def _smtp_server_session() -> Iterator[SmtpServer]:
    yield from _serve(SmtpServer("127.0.0.1", _free_port()))


@pytest.fixture
def smtp_server(_smtp_server_session: SmtpServer) -> SmtpServer:
    """The loopback SMTP server, with its message list cleared for this test."""
    _smtp_server_session.messages.clear()
    return _smtp_server_session


@pytest.fixture(scope="session")
def _smtps_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    openssl = shutil.which("openssl")
    if openssl is None:
        service_missing("openssl (to make the test SMTP server's certificate)")
    folder = tmp_path_factory.mktemp("smtps")
    cert, key = Path(folder, "cert.pem"), Path(folder, "key.pem")
    subprocess.run(
        [
            *(str(openssl), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    state = SmtpServer("127.0.0.1", _free_port(), client_context=client_context)
    yield from _serve(state, ssl_context=server_context)


@pytest.fixture
def smtps_server(_smtps_server_session: SmtpServer) -> SmtpServer:
    """A loopback SMTP server over implicit TLS (``smtplib.SMTP_SSL``), cleared for this test."""
    _smtps_server_session.messages.clear()
    return _smtps_server_session


@pytest.fixture(scope="session")
def _lmtp_server_session() -> Iterator[SmtpServer]:
    yield from _serve(SmtpServer("127.0.0.1", _free_port()), lmtp=True)


@pytest.fixture
def lmtp_server(_lmtp_server_session: SmtpServer) -> SmtpServer:
    """A loopback LMTP server (``smtplib.LMTP``), cleared for this test."""
    _lmtp_server_session.messages.clear()
    return _lmtp_server_session


def _accept_any_login(*args: Any) -> Any:
    from aiosmtpd.smtp import AuthResult

    return AuthResult(success=True)


@pytest.fixture(scope="session")
def _smtp_auth_server_session() -> Iterator[SmtpServer]:
    state = SmtpServer("127.0.0.1", _free_port())
    yield from _serve(state, authenticator=_accept_any_login, auth_require_tls=False)


@pytest.fixture
def smtp_auth_server(_smtp_auth_server_session: SmtpServer) -> SmtpServer:
    """A loopback SMTP server offering AUTH (any login succeeds), cleared for this test."""
    _smtp_auth_server_session.messages.clear()
    return _smtp_auth_server_session
