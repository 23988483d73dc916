"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps every message it receives."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.peers.services import service_missing


@dataclass
class SmtpServer:
    """The server's address and the envelopes it accepted."""

    host: str
    port: int
    messages: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def _smtp_server_session() -> Iterator[SmtpServer]:
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        service_missing("aiosmtpd (the test SMTP server)")
    state = SmtpServer("127.0.0.1", _free_port())
    controller = Controller(state, hostname=state.host, port=state.port)
    controller.start()
    try:
        yield state
    finally:
        controller.stop()


@pytest.fixture
def smtp_server(_smtp_server_session: SmtpServer) -> SmtpServer:
    """The loopback SMTP server, with its message list cleared for this test."""
    _smtp_server_session.messages.clear()
    return _smtp_server_session
