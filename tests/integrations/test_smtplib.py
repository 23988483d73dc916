"""smtplib against a real loopback SMTP server: nothing delivered in shadow, all of it as primary."""

from __future__ import annotations

import smtplib
import threading

import pytest

import shadowguard
from shadowguard import ShadowSideEffectBlocked
from shadowguard.integrations import smtplib as sink
from tests.integrations._mail import assert_one_delivered_two_suppressed, order_message
from tests.peers.smtp import SmtpServer

SINK = "smtplib"


def _connect(server: SmtpServer) -> smtplib.SMTP:
    return smtplib.SMTP(server.host, server.port, timeout=5)


@pytest.mark.usefixtures("installed")
def test_send_message_delivers_nothing_in_shadow(smtp_server: SmtpServer) -> None:
    with _connect(smtp_server) as smtp:
        with shadowguard.shadow() as scope:
            assert smtp.send_message(order_message()) == {}
            assert (
                smtp.sendmail("shop@example.test", "carol@example.test", b"Subject: x\r\n\r\nhi")
                == {}
            )
        assert smtp_server.messages == []
        smtp.send_message(order_message())
    assert_one_delivered_two_suppressed(smtp_server, scope)


@pytest.mark.usefixtures("installed")
def test_shadow_still_validates_addresses_and_the_message(smtp_server: SmtpServer) -> None:
    with _connect(smtp_server) as smtp, shadowguard.shadow() as scope:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("shop@example.test", ["not an address"], b"x")
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("shop@example.test", [], b"x")
        with pytest.raises(smtplib.SMTPSenderRefused):
            smtp.sendmail("nobody", ["alice@example.test"], b"x")
        with pytest.raises(UnicodeEncodeError):
            smtp.sendmail("shop@example.test", ["alice@example.test"], "naïve")
        refused = smtp.sendmail("shop@example.test", ["alice@example.test", "bad"], b"x")
        bounce = smtp.sendmail("", ["alice@example.test"], b"x")
    assert list(refused) == ["bad"]
    assert bounce == {}
    assert smtp_server.messages == []
    assert [s.error is not None for s in scope.suppressed] == [True] * 4 + [False] * 2


@pytest.mark.usefixtures("installed")
def test_a_hand_rolled_transaction_is_stopped_at_data(smtp_server: SmtpServer) -> None:
    with _connect(smtp_server) as smtp:
        smtp.ehlo()
        with shadowguard.shadow() as scope:
            smtp.mail("shop@example.test")
            smtp.rcpt("alice@example.test")
            code, _ = smtp.data(b"Subject: x\r\n\r\nhi")
        assert code == 250
        assert smtp_server.messages == []
        assert scope.suppressed[0].detail["via"] == "data"
        assert scope.suppressed[0].detail["operation"] == "data"
        smtp.mail("shop@example.test")
        smtp.rcpt("alice@example.test")
        assert smtp.data(b"Subject: x\r\n\r\nhi")[0] == 250
    assert len(smtp_server.messages) == 1


@pytest.mark.usefixtures("installed")
def test_threads_keep_shadow_only_with_propagate(smtp_server: SmtpServer) -> None:
    def send() -> None:
        with _connect(smtp_server) as smtp:
            smtp.send_message(order_message())

    with shadowguard.shadow():
        worker = threading.Thread(target=shadowguard.propagate(send))
        worker.start()
        worker.join()
        assert smtp_server.messages == []
        plain = threading.Thread(target=send)  # a plain thread starts as primary
        plain.start()
        plain.join()
    assert len(smtp_server.messages) == 1


def test_primary_is_unchanged_and_uninstall_restores(smtp_server: SmtpServer) -> None:
    originals = vars(smtplib.SMTP)["sendmail"], vars(smtplib.SMTP)["data"]
    sink.install()
    sink.install()
    try:
        assert smtplib.SMTP_SSL.sendmail is smtplib.SMTP.sendmail
        assert smtplib.LMTP.sendmail is smtplib.SMTP.sendmail
        with _connect(smtp_server) as smtp:
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                smtp.sendmail("shop@example.test", [], b"x")  # the real server's refusal
            smtp.sendmail("shop@example.test", ["alice@example.test"], b"Subject: x\r\n\r\nhi")
    finally:
        sink.uninstall()
    assert (vars(smtplib.SMTP)["sendmail"], vars(smtplib.SMTP)["data"]) == originals
    assert len(smtp_server.messages) == 1
    with _connect(smtp_server) as smtp, shadowguard.shadow():
        smtp.send_message(order_message())
    assert len(smtp_server.messages) == 2


def test_install_by_name_is_always_available(smtp_server: SmtpServer) -> None:
    """smtplib is in the standard library: shadowguard.install() always includes it."""
    assert "smtplib" in shadowguard.install("smtplib")
    try:
        with _connect(smtp_server) as smtp, shadowguard.shadow():
            smtp.send_message(order_message())
    finally:
        shadowguard.uninstall()
    assert smtp_server.messages == []


def _deliver_below_data(smtp: smtplib.SMTP) -> None:
    """A hand-written transaction: DATA through docmd(), the message through send()."""
    smtp.mail("shop@example.test")
    smtp.rcpt("alice@example.test")
    smtp.docmd("DATA")
    smtp.send(b"Subject: below data()\r\n\r\nhi\r\n.\r\n")
    smtp.getreply()


def _putcmd_data(smtp: smtplib.SMTP) -> None:
    smtp.mail("shop@example.test")
    smtp.rcpt("alice@example.test")
    smtp.putcmd("data")
    smtp.getreply()
    smtp.send(b"Subject: x\r\n\r\nhi\r\n.\r\n")


def _one_raw_send(smtp: smtplib.SMTP) -> None:
    smtp.send(
        b"MAIL FROM:<shop@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
        b"Subject: x\r\n\r\nhi\r\n.\r\n"
    )


def _bdat(smtp: smtplib.SMTP) -> None:
    smtp.mail("shop@example.test")
    smtp.rcpt("alice@example.test")
    body = b"Subject: x\r\n\r\nhi\r\n"
    smtp.send(b"BDAT %d LAST\r\n" % len(body) + body)


def _partial_line(smtp: smtplib.SMTP) -> None:
    smtp.send(b"DA")


BELOW_DATA = {
    "docmd DATA + send": _deliver_below_data,
    "putcmd data + send": _putcmd_data,
    "one raw send": _one_raw_send,
    "BDAT": _bdat,
    "partial line": _partial_line,
}


def _connections(server: SmtpServer, kind: str) -> smtplib.SMTP:
    if kind == "SMTP_SSL":
        return smtplib.SMTP_SSL(server.host, server.port, context=server.client_context, timeout=5)
    if kind == "LMTP":
        return smtplib.LMTP(server.host, server.port, timeout=5)  # its ehlo() sends LHLO
    return _connect(server)


@pytest.mark.parametrize("kind", ["SMTP", "SMTP_SSL", "LMTP"])
@pytest.mark.parametrize("name", list(BELOW_DATA))
@pytest.mark.usefixtures("installed")
def test_nothing_is_delivered_below_data(
    request: pytest.FixtureRequest, kind: str, name: str
) -> None:
    """DATA or BDAT written by hand is refused before a byte of it leaves; the session is
    still usable, and primary delivers through it."""
    server: SmtpServer = request.getfixturevalue(
        {"SMTP": "smtp_server", "SMTP_SSL": "smtps_server", "LMTP": "lmtp_server"}[kind]
    )
    with _connections(server, kind) as smtp:
        smtp.ehlo_or_helo_if_needed()
        with shadowguard.shadow() as scope, pytest.raises(ShadowSideEffectBlocked, match="SMTP"):
            BELOW_DATA[name](smtp)
        assert server.messages == []
        (blocked,) = scope.suppressed
        assert (blocked.kind, blocked.blocked, blocked.detail["via"]) == ("mail.send", True, "send")
        smtp.rset()
        smtp.sendmail("shop@example.test", ["alice@example.test"], b"Subject: primary\r\n\r\nhi")
    (delivered,) = server.messages
    assert b"primary" in delivered.original_content


@pytest.mark.usefixtures("installed")
def test_login_and_commands_that_deliver_nothing_still_work_in_shadow(
    smtp_server: SmtpServer,
) -> None:
    """EHLO, NOOP, VRFY, RSET, MAIL and RCPT go out; an AUTH exchange keeps its lines."""
    with _connect(smtp_server) as smtp, shadowguard.shadow():
        smtp.ehlo()
        assert smtp.noop()[0] == 250
        assert smtp.mail("shop@example.test")[0] == 250
        assert smtp.rcpt("alice@example.test")[0] == 250
        assert smtp.rset()[0] == 250
        smtp.verify("alice@example.test")
        # The test server offers no AUTH: smtplib's auth() sends AUTH and reads 503.
        with pytest.raises(smtplib.SMTPException):
            smtp.auth("PLAIN", lambda challenge=None: "user\0user\0pw")
    assert smtp_server.messages == []


@pytest.mark.parametrize("initial_response_ok", [True, False])
@pytest.mark.usefixtures("installed")
def test_login_works_in_shadow_with_its_response_lines(
    smtp_auth_server: SmtpServer, initial_response_ok: bool
) -> None:
    """AUTH LOGIN sends user and password as bare base64 lines: let out inside auth()."""
    with _connect(smtp_auth_server) as smtp, shadowguard.shadow():
        smtp.ehlo()
        smtp.user, smtp.password = "shop", "secret"
        assert (
            smtp.auth("LOGIN", smtp.auth_login, initial_response_ok=initial_response_ok)[0] == 235
        )
        with pytest.raises(ShadowSideEffectBlocked):
            smtp.send(b"c2hvcA==\r\n")  # the same kind of line, outside auth()
    assert smtp_auth_server.messages == []


def test_a_fault_inside_the_guard_fails_closed_and_leaves_primary_as_it_is(
    smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shadow: the guard's own error surfaces and nothing is sent. Primary: every call
    returns, or raises, exactly what it does without the guard."""

    def unguarded() -> list[object]:
        with _connect(smtp_server) as smtp:
            outcome: list[object] = [smtp.docmd("DATA")[0]]
            try:
                smtp.sendmail("shop@example.test", [], b"x")
            except smtplib.SMTPRecipientsRefused as exc:
                outcome.append(exc.recipients)
            outcome.append(smtp.sendmail("shop@example.test", "bob@example.test", b"x"))
            return outcome

    expected = unguarded()
    assert len(smtp_server.messages) == 1

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("fault inside the guard")

    sink.install()
    try:
        for internal in ("_shadow_sendmail", "_check_commands"):
            monkeypatch.setattr(sink, internal, broken)
        with _connect(smtp_server) as smtp, shadowguard.shadow():
            with pytest.raises(RuntimeError, match="fault"):
                smtp.send_message(order_message())
            with pytest.raises(RuntimeError, match="fault"):
                smtp.docmd("DATA")
        assert len(smtp_server.messages) == 1
        assert unguarded() == expected
    finally:
        sink.uninstall()
    assert len(smtp_server.messages) == 2
