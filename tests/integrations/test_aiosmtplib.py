"""aiosmtplib against a real loopback SMTP server (aiosmtpd): nothing delivered in shadow,
all of it as primary."""

from __future__ import annotations

import asyncio
from typing import Any

import aiosmtplib
import pytest

import shadowguard
from shadowguard import ShadowSideEffectBlocked
from shadowguard.integrations import aiosmtplib as sink
from tests.integrations._mail import assert_one_delivered_two_suppressed, order_message
from tests.integrations._support import installing
from tests.peers.smtp import SmtpServer

SINK = "aiosmtplib"


def _client(server: SmtpServer) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(hostname=server.host, port=server.port, timeout=5, start_tls=False)


@pytest.mark.asyncio
async def test_send_message_and_sendmail_deliver_nothing_in_shadow(smtp_server: SmtpServer) -> None:
    client = _client(smtp_server)  # made and connected before install()
    async with client:
        with installing(sink):
            with shadowguard.shadow() as scope:
                errors, reply = await client.send_message(order_message())
                assert errors == {}
                assert "suppressed" in reply
                raw = b"Subject: x\r\n\r\nhi"
                assert (await client.sendmail("shop@example.test", "carol@example.test", raw))[
                    0
                ] == {}
            assert smtp_server.messages == []
            await client.send_message(order_message())
    assert_one_delivered_two_suppressed(smtp_server, scope)


@pytest.mark.asyncio
@pytest.mark.usefixtures("installed")
async def test_the_module_level_send_delivers_nothing_in_shadow(smtp_server: SmtpServer) -> None:
    where: dict[str, Any] = {
        "hostname": smtp_server.host,
        "port": smtp_server.port,
        "start_tls": False,
    }
    with shadowguard.shadow() as scope:
        errors, _ = await aiosmtplib.send(order_message(), **where)
        await aiosmtplib.send(
            "Subject: raw\r\n\r\nhi",
            sender="shop@example.test",
            recipients=["dave@example.test"],
            **where,
        )
    assert errors == {}
    assert smtp_server.messages == []
    assert scope.counts["mail.send"] == 2
    await aiosmtplib.send(order_message("erin@example.test"), **where)
    assert [m.rcpt_tos for m in smtp_server.messages] == [
        ["erin@example.test", "audit@example.test"]
    ]


def test_the_sync_helpers_deliver_nothing_in_shadow(smtp_server: SmtpServer) -> None:
    """``send_message_sync`` runs its own event loop, which starts in the caller's context."""
    with installing(sink):
        with shadowguard.shadow() as scope:
            _client(smtp_server).send_message_sync(order_message())
        assert smtp_server.messages == []
        _client(smtp_server).send_message_sync(order_message())
    assert len(smtp_server.messages) == 1
    assert scope.counts["mail.send"] == 1


@pytest.mark.asyncio
@pytest.mark.usefixtures("installed")
async def test_shadow_still_validates_addresses_and_the_message(smtp_server: SmtpServer) -> None:
    async with _client(smtp_server) as client:
        with shadowguard.shadow() as scope:
            with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
                await client.sendmail("shop@example.test", ["not an address"], b"x")
            with pytest.raises(aiosmtplib.SMTPSenderRefused):
                await client.sendmail("nobody", ["alice@example.test"], b"x")
            # aiosmtplib 3.3 and later refuse it first (ValueError); before, the guard does.
            with pytest.raises((ValueError, aiosmtplib.SMTPRecipientsRefused)):
                await client.sendmail("shop@example.test", ["a@b.test\r\nDATA"], b"x")
            with pytest.raises(UnicodeEncodeError):
                await client.sendmail("shop@example.test", ["alice@example.test"], "naïve")
            errors, _ = await client.sendmail(
                "shop@example.test", ["alice@example.test", "bad"], b"x"
            )
    assert list(errors) == ["bad"]
    assert errors["bad"].code == 553
    assert smtp_server.messages == []
    assert [s.error is not None for s in scope.suppressed] == [True] * 4 + [False]
    unconnected = _client(smtp_server)
    with shadowguard.shadow(), pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await unconnected.sendmail("shop@example.test", ["alice@example.test"], b"x")


@pytest.mark.asyncio
@pytest.mark.usefixtures("installed")
async def test_a_hand_rolled_transaction_is_stopped_at_data(smtp_server: SmtpServer) -> None:
    async with _client(smtp_server) as client:
        with shadowguard.shadow() as scope:
            await client.mail("shop@example.test")
            await client.rcpt("alice@example.test")
            response = await client.data(b"Subject: x\r\n\r\nhi")
        assert response.code == 250
        assert smtp_server.messages == []
        assert scope.suppressed[0].detail["via"] == "data"
        await client.mail("shop@example.test")
        await client.rcpt("alice@example.test")
        assert (await client.data(b"Subject: x\r\n\r\nhi")).code == 250
    assert len(smtp_server.messages) == 1


@pytest.mark.asyncio
@pytest.mark.usefixtures("installed")
async def test_raw_commands_and_bytes_that_could_deliver_are_refused(
    smtp_server: SmtpServer,
) -> None:
    async with _client(smtp_server) as client:
        await client.mail("shop@example.test")
        await client.rcpt("alice@example.test")
        protocol = client.protocol
        assert protocol is not None
        with shadowguard.shadow() as scope:
            with pytest.raises(ShadowSideEffectBlocked, match="'DATA'"):
                await client.execute_command(b"DATA")
            with pytest.raises(ShadowSideEffectBlocked, match="'BDAT'"):
                await client.execute_command(b"BDAT", b"5", b"LAST")
            with pytest.raises(ShadowSideEffectBlocked):
                await protocol.execute_data_command(b"Subject: x\r\n\r\nhi")
            for raw in (b"DATA\r\n", b"Subject: x\r\n", b"NOOP", b"NOOP\rDATA\r\n"):
                with pytest.raises(ShadowSideEffectBlocked):
                    protocol.write(raw)
            assert (await client.noop()).code == 250  # a command that delivers nothing
    assert smtp_server.messages == []
    assert all(s.blocked for s in scope.suppressed)
    assert len(scope.suppressed) == 7


@pytest.mark.asyncio
@pytest.mark.usefixtures("installed")
async def test_login_works_in_shadow_and_its_exchange_opens_nothing_else(
    smtp_auth_server: SmtpServer,
) -> None:
    for method in ("auth_plain", "auth_login"):
        async with _client(smtp_auth_server) as client:
            with shadowguard.shadow():
                await client.ehlo()
                assert (await getattr(client, method)("user", "secret")).code == 235
                await client.send_message(order_message())
                with pytest.raises(ShadowSideEffectBlocked):
                    await client.execute_command(b"DATA")
    assert smtp_auth_server.messages == []


@pytest.mark.asyncio
@pytest.mark.usefixtures("installed")
async def test_concurrent_tasks_keep_their_own_shadow_or_primary(smtp_server: SmtpServer) -> None:
    async def send(i: int, shadow: bool) -> None:
        async with _client(smtp_server) as client:
            if shadow:
                with shadowguard.shadow():
                    await asyncio.sleep(0)
                    await client.send_message(order_message(f"s{i}@example.test"))
            else:
                await asyncio.sleep(0)
                await client.send_message(order_message(f"p{i}@example.test"))

    await asyncio.gather(*(send(i, i % 2 == 0) for i in range(8)))
    delivered = sorted(m.rcpt_tos[0] for m in smtp_server.messages)
    assert delivered == [f"p{i}@example.test" for i in (1, 3, 5, 7)]


def test_install_is_idempotent_and_uninstall_restores() -> None:
    from aiosmtplib.protocol import SMTPProtocol

    originals = vars(aiosmtplib.SMTP)["sendmail"], vars(SMTPProtocol)["write"]
    sink.install()
    sink.install()
    try:
        assert vars(aiosmtplib.SMTP)["sendmail"] is not originals[0]
    finally:
        sink.uninstall()
    assert (vars(aiosmtplib.SMTP)["sendmail"], vars(SMTPProtocol)["write"]) == originals
    with pytest.raises(TypeError, match="option"):
        sink.install(allow=["x"])


@pytest.mark.asyncio
@pytest.mark.usefixtures("installed")
async def test_one_client_shared_by_concurrent_shadow_and_primary_tasks(
    smtp_server: SmtpServer,
) -> None:
    """A shadow sendmail never touches the connection, so a primary transaction on the same
    client runs as it would alone."""
    async with _client(smtp_server) as client:

        async def send(i: int, shadow: bool) -> None:
            to = f"{'s' if shadow else 'p'}{i}@example.test"
            if shadow:
                with shadowguard.shadow():
                    await client.send_message(order_message(to))
            else:
                await client.send_message(order_message(to))

        await asyncio.gather(*(send(i, i % 2 == 1) for i in range(10)))
    delivered = sorted(m.rcpt_tos[0] for m in smtp_server.messages)
    assert delivered == [f"p{i}@example.test" for i in (0, 2, 4, 6, 8)]


@pytest.mark.asyncio
@pytest.mark.usefixtures("installed")
async def test_send_with_a_login_delivers_nothing_in_shadow(smtp_auth_server: SmtpServer) -> None:
    """``aiosmtplib.send(username=...)`` logs in while it connects; its AUTH exchange goes
    out, its message does not."""
    where: dict[str, Any] = {
        "hostname": smtp_auth_server.host,
        "port": smtp_auth_server.port,
        "start_tls": False,
        "username": "user",
        "password": "secret",
    }
    with shadowguard.shadow() as scope:
        await aiosmtplib.send(order_message(), **where)
    assert smtp_auth_server.messages == []
    assert scope.counts["mail.send"] == 1
    await aiosmtplib.send(order_message(), **where)
    assert len(smtp_auth_server.messages) == 1
