"""smtplib against a real loopback SMTP server: nothing delivered in shadow, all of it as primary."""

from __future__ import annotations

import smtplib
import threading
from email.message import EmailMessage

import pytest

import shadowguard
from shadowguard.integrations import smtplib as sink
from tests.peers.smtp import SmtpServer

SINK = "smtplib"


def _message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "shop@example.test"
    message["To"] = "alice@example.test, bob@example.test"
    message["Bcc"] = "audit@example.test"
    message["Subject"] = "Your order"
    message.set_content("Thanks!")
    return message


def _connect(server: SmtpServer) -> smtplib.SMTP:
    return smtplib.SMTP(server.host, server.port, timeout=5)


@pytest.mark.usefixtures("installed")
def test_send_message_delivers_nothing_in_shadow(smtp_server: SmtpServer) -> None:
    with _connect(smtp_server) as smtp:
        with shadowguard.shadow() as scope:
            assert smtp.send_message(_message()) == {}
            assert (
                smtp.sendmail("shop@example.test", "carol@example.test", b"Subject: x\r\n\r\nhi")
                == {}
            )
        assert smtp_server.messages == []
        smtp.send_message(_message())
    (envelope,) = smtp_server.messages
    assert envelope.rcpt_tos == ["alice@example.test", "bob@example.test", "audit@example.test"]
    assert b"Bcc" not in envelope.original_content
    assert scope.counts["mail.send"] == 2
    first = scope.suppressed[0]
    assert first.kind == "mail.send"
    assert first.target == f"smtp://{smtp_server.host}"
    assert first.detail["recipients"] == (
        "alice@example.test",
        "bob@example.test",
        "audit@example.test",
    )
    assert first.detail["operation"] == "sendmail"
    assert first.detail["bytes"] > 0


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
            smtp.send_message(_message())

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
        smtp.send_message(_message())
    assert len(smtp_server.messages) == 2


def test_install_by_name_is_always_available(smtp_server: SmtpServer) -> None:
    """smtplib is in the standard library: shadowguard.install() always includes it."""
    assert "smtplib" in shadowguard.install("smtplib")
    try:
        with _connect(smtp_server) as smtp, shadowguard.shadow():
            smtp.send_message(_message())
    finally:
        shadowguard.uninstall()
    assert smtp_server.messages == []
