"""The order mail the SMTP client tests send, and what shadow records of it, shared by the
smtplib and aiosmtplib tests."""

from __future__ import annotations

from email.message import EmailMessage

from shadowguard import Scope
from tests.peers.smtp import SmtpServer


def order_message(to: str = "alice@example.test, bob@example.test") -> EmailMessage:
    """An order confirmation to ``to``, with a Bcc to audit@example.test."""
    message = EmailMessage()
    message["From"] = "shop@example.test"
    message["To"] = to
    message["Bcc"] = "audit@example.test"
    message["Subject"] = "Your order"
    message.set_content("Thanks!")
    return message


def assert_one_delivered_two_suppressed(server: SmtpServer, scope: Scope) -> None:
    """The server got the primary order mail alone (to all three, Bcc stripped); the scope
    suppressed two sends, the first of them that mail."""
    (envelope,) = server.messages
    assert envelope.rcpt_tos == ["alice@example.test", "bob@example.test", "audit@example.test"]
    assert b"Bcc" not in envelope.original_content
    assert scope.counts["mail.send"] == 2
    first = scope.suppressed[0]
    assert first.kind == "mail.send"
    assert first.target == f"smtp://{server.host}"
    assert first.detail["recipients"] == (
        "alice@example.test",
        "bob@example.test",
        "audit@example.test",
    )
    assert first.detail["operation"] == "sendmail"
    assert first.detail["bytes"] > 0
