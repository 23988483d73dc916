"""smtplib: in shadow, nothing is delivered (SMTP, SMTP_SSL, LMTP).

``send_message`` still builds the message (headers parsed, Bcc removed, flattened) and
hands it to ``sendmail``; in shadow ``sendmail`` then checks the message and addresses
locally, records ``Suppression(kind="mail.send")`` and returns without a word to the
server. A hand-rolled ``mail()``/``rcpt()``/``data()`` transaction is caught at
``data()``: the envelope is reset and nothing is delivered.

Below those, ``SMTP.send`` is the seam every byte smtplib writes goes through
(``putcmd``, ``docmd``, the message after DATA). In shadow it lets out only whole command
lines of commands that deliver nothing (EHLO, MAIL, RCPT, RSET, AUTH, ...; inside
``auth()`` its response lines too) and refuses the rest before a byte is sent: DATA, BDAT,
message text, a partial line. smtplib is in the standard library, so this integration is
always available.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Sequence
from typing import Any

from shadowguard._mail import ADDRESS_REFUSED, SEND_REMEDY, address_error, command_problem
from shadowguard.contract import PROCESS, Kind, Patches, mark_wrapped, record, refuse, scope_now

__all__ = ["install", "uninstall"]

_patches = Patches("smtplib")
# Set on an SMTP object while its auth() runs in shadow.
_IN_AUTH = "_shadowguard_in_auth"


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
        problem = address_error(from_addr, sender=True)
        if problem is not None:
            raise smtplib.SMTPSenderRefused(ADDRESS_REFUSED, problem.encode(), from_addr)
        refused: dict[str, tuple[int, bytes]] = {}
        for address in recipients:
            problem = address_error(address, sender=False)
            if problem is not None:
                refused[address] = (ADDRESS_REFUSED, problem.encode())
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


def _check_commands(smtp: Any, data: str | bytes) -> None:
    """Refuse ``data`` unless it is whole lines of commands that deliver nothing."""
    problem = command_problem(data, in_auth=bool(vars(smtp).get(_IN_AUTH)))
    if problem:
        raise refuse(
            Kind.MAIL_SEND,
            _target(smtp),
            "send",
            f"{problem} written to the server in shadow traffic (it could deliver mail)",
            remedy=SEND_REMEDY,
            detail={"bytes": len(data), "via": "send"},
        )


def _send_hook(original: Callable[..., Any]) -> Callable[..., Any]:

    def send(self: Any, s: str | bytes) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, s)
        _check_commands(self, s)
        return original(self, s)

    mark_wrapped(send, original)
    return send


def _auth_hook(original: Callable[..., Any]) -> Callable[..., Any]:

    def auth(
        self: Any, mechanism: str, authobject: Any, *, initial_response_ok: bool = True
    ) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, mechanism, authobject, initial_response_ok=initial_response_ok)
        outer = vars(self).get(_IN_AUTH, False)
        vars(self)[_IN_AUTH] = True
        try:
            return original(self, mechanism, authobject, initial_response_ok=initial_response_ok)
        finally:
            vars(self)[_IN_AUTH] = outer

    mark_wrapped(auth, original)
    return auth


def _apply() -> None:
    smtp = vars(smtplib.SMTP)
    _patches.setattr(smtplib.SMTP, "sendmail", _sendmail_hook(smtp["sendmail"]))
    _patches.setattr(smtplib.SMTP, "data", _data_hook(smtp["data"]))
    _patches.setattr(smtplib.SMTP, "send", _send_hook(smtp["send"]))
    _patches.setattr(smtplib.SMTP, "auth", _auth_hook(smtp["auth"]))


def install(**options: Any) -> None:
    """Suppress mail delivery through ``smtplib.SMTP`` (and subclasses) in shadow; idempotent.

    It takes no options. SMTP objects created before ``install()`` are covered too (the
    patch is on the class), so there is no per-object ``guard()``.
    """
    _patches.install(_apply, options)


def uninstall() -> None:
    """Restore smtplib as it was before :func:`install`."""
    _patches.uninstall()
