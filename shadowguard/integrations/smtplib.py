"""smtplib: in shadow, ``sendmail``/``send_message`` deliver nothing (SMTP, SMTP_SSL, LMTP).

``send_message`` still builds the message (headers parsed, Bcc removed, flattened) and
hands it to ``sendmail``; in shadow ``sendmail`` then checks the message and addresses
locally, records ``Suppression(kind="mail.send")`` and returns without a word to the
server. A hand-rolled ``mail()``/``rcpt()``/``data()`` transaction is caught at
``data()``: the envelope is reset and nothing is delivered. smtplib is in the standard
library, so this integration is always available.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Sequence
from email.utils import parseaddr
from typing import Any

from shadowguard.contract import PROCESS, Kind, Patches, mark_wrapped, record, scope_now

__all__ = ["install", "uninstall"]

_patches = Patches("smtplib")
_ADDRESS_REFUSED = 553


def _address_error(address: object, *, sender: bool) -> str | None:
    """Why ``address`` could not be a mailbox, or None if it looks fine."""
    if not isinstance(address, str):
        return f"address must be a string, got {type(address).__name__}"
    if sender and address == "":
        return None  # the null reverse-path of bounces
    if "\r" in address or "\n" in address:
        return "address contains a line break"
    spec = parseaddr(address)[1]
    local, at, domain = spec.rpartition("@")
    if not at or not local or not domain or any(c.isspace() or c in "<>" for c in spec):
        return f"{address!r} is not a mailbox address"
    return None


def _target(smtp: Any) -> str:
    return f"smtp://{getattr(smtp, '_host', '') or 'unconnected'}"


def _shadow_sendmail(
    smtp: Any,
    from_addr: str,
    to_addrs: str | Sequence[str],
    msg: str | bytes,
    mail_options: Sequence[str],
) -> dict[str, tuple[int, bytes]]:
    recipients = [to_addrs] if isinstance(to_addrs, str) else list(to_addrs)
    detail: dict[str, Any] = {"from": from_addr, "recipients": tuple(recipients)}
    try:
        # The same encoding checks the real transaction would hit before delivery.
        if isinstance(msg, str):
            msg = msg.encode("ascii")
        detail["bytes"] = len(msg)
        if not any(str(o).upper() == "SMTPUTF8" for o in mail_options):
            for address in (from_addr, *recipients):
                if isinstance(address, str):
                    address.encode("ascii")
        problem = _address_error(from_addr, sender=True)
        if problem is not None:
            raise smtplib.SMTPSenderRefused(_ADDRESS_REFUSED, problem.encode(), from_addr)
        refused: dict[str, tuple[int, bytes]] = {}
        for address in recipients:
            problem = _address_error(address, sender=False)
            if problem is not None:
                refused[address] = (_ADDRESS_REFUSED, problem.encode())
        if len(refused) == len(recipients):
            raise smtplib.SMTPRecipientsRefused(refused)
    except Exception as exc:
        record(Kind.MAIL_SEND, _target(smtp), "sendmail", detail, error=exc)
        raise
    detail["refused"] = tuple(refused)
    record(Kind.MAIL_SEND, _target(smtp), "sendmail", detail)
    return refused


def _sendmail_hook(original: Callable[..., Any]) -> Callable[..., Any]:

    def sendmail(
        self: Any,
        from_addr: str,
        to_addrs: str | Sequence[str],
        msg: str | bytes,
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
    ) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, from_addr, to_addrs, msg, mail_options, rcpt_options)
        return _shadow_sendmail(self, from_addr, to_addrs, msg, mail_options)

    mark_wrapped(sendmail, original)
    return sendmail


def _data_hook(original: Callable[..., Any]) -> Callable[..., Any]:

    def data(self: Any, msg: str | bytes) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, msg)
        size = len(msg)
        # Abandon the envelope that mail()/rcpt() opened, so nothing is queued.
        self.rset()
        record(Kind.MAIL_SEND, _target(self), "data", {"bytes": size, "via": "data"})
        return 250, b"shadowguard: message suppressed in shadow traffic"

    mark_wrapped(data, original)
    return data


def _apply() -> None:
    _patches.setattr(smtplib.SMTP, "sendmail", _sendmail_hook(vars(smtplib.SMTP)["sendmail"]))
    _patches.setattr(smtplib.SMTP, "data", _data_hook(vars(smtplib.SMTP)["data"]))


def install(**options: Any) -> None:
    """Suppress mail delivery through ``smtplib.SMTP`` (and subclasses) in shadow; idempotent.

    It takes no options. SMTP objects created before ``install()`` are covered too (the
    patch is on the class), so there is no per-object ``guard()``.
    """
    _patches.install(_apply, options)


def uninstall() -> None:
    """Restore smtplib as it was before :func:`install`."""
    _patches.uninstall()
