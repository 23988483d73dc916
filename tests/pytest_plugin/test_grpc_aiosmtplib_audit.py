"""``--shadowguard-audit`` on a suite that calls gRPC and sends mail with aiosmtplib: counted
per test; the gRPC server ran only the allowed read, the SMTP server received nothing."""

from __future__ import annotations

import pytest

from tests.peers.grpc_server import GrpcServer
from tests.peers.smtp import SmtpServer
from tests.pytest_plugin._audit import run_audit

pytest_plugins = ["pytester"]

CONFTEST = """
import pytest
import shadowguard
from shadowguard.integrations.grpc import GrpcStub


@pytest.fixture(scope="session", autouse=True)
def guards():
    shadowguard.install(
        "grpc",
        "aiosmtplib",
        grpc={
            "allow": ["/shop.Orders/Get"],
            "stubs": [GrpcStub("/shop.Orders/Cancel", response=b"stubbed")],
        },
    )
    yield
    shadowguard.uninstall("grpc", "aiosmtplib")
"""

TESTS = """
import asyncio
import os

import aiosmtplib
import grpc


def test_cancels_an_order_and_mails_the_customer():
    with grpc.insecure_channel(os.environ["SG_GRPC_TARGET"]) as channel:
        assert channel.unary_unary("/shop.Orders/Get")(b"o") == b"real:o"
        assert channel.unary_unary("/shop.Orders/Cancel")(b"o") == b"stubbed"
    host, port = os.environ["SG_SMTP"].split(":")
    asyncio.run(
        aiosmtplib.send(
            "Subject: cancelled\\r\\n\\r\\nbye",
            sender="shop@example.test",
            recipients=["alice@example.test"],
            hostname=host,
            port=int(port),
            start_tls=False,
        )
    )
"""


def test_audit_counts_grpc_and_mail_suppressions_and_the_peers_saw_only_the_read(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    grpc_server: GrpcServer,
    smtp_server: SmtpServer,
) -> None:
    monkeypatch.setenv("SG_GRPC_TARGET", grpc_server.target)
    monkeypatch.setenv("SG_SMTP", f"{smtp_server.host}:{smtp_server.port}")
    run_audit(
        pytester,
        TESTS,
        CONFTEST,
        allow_hosts=f"{grpc_server.target} {smtp_server.host}:{smtp_server.port}",
        suppressed={
            "test_cancels_an_order_and_mails_the_customer": "grpc.call=1, mail.send=1",
        },
    )
    assert grpc_server.methods() == ["Get"]
    assert grpc_server.hits[0].metadata["x-shadow-request"] == "1"
    assert smtp_server.messages == []
