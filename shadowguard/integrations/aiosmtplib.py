"""aiosmtplib: in shadow, nothing is delivered (``SMTP``, ``aiosmtplib.send``).

``send_message`` still builds the message (headers parsed, Bcc removed, flattened) and
hands it to ``sendmail``, as ``aiosmtplib.send`` does; in shadow ``sendmail`` then checks
the message and addresses locally, records ``Suppression(kind="mail.send")`` and returns
``({}, message)`` without a word to the server. A hand-rolled
``mail()``/``rcpt()``/``data()`` transaction is caught at ``data()``: the envelope is
reset and nothing is delivered.

Below those, ``SMTPProtocol.write`` is the seam every byte aiosmtplib writes goes
through. In shadow it lets out only whole command lines of commands that deliver nothing
(EHLO, MAIL, RCPT, RSET, AUTH, ...; inside an ``auth_*()`` exchange its response lines
too) and refuses the rest before a byte is sent, as ``execute_data_command`` (DATA and the
message) is refused outright. The patches are on the classes, so clients made before
``install()`` are covered.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from shadowguard._mail import ADDRESS_REFUSED, SEND_REMEDY, address_error, command_problem
from shadowguard.contract import PROCESS, Kind, Patches, mark_wrapped, record, refuse, scope_now
from shadowguard.errors import missing_extra_error

try:
    import aiosmtplib
    from aiosmtplib.email import parse_address
    from aiosmtplib.protocol import SMTPProtocol
except ImportError:  # pragma: no cover - exercised only without the extra
    raise missing_extra_error("aiosmtplib", "aiosmtplib") from None

__all__ = ["install", "uninstall"]

_patches = Patches("aiosmtplib")
_SUPPRESSED = "shadowguard: message suppressed in shadow traffic"
# True while an auth_*() exchange runs in shadow: its base64 response lines may go out.
_in_auth: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "shadowguard_aiosmtplib_in_auth", default=False
)
_AUTH_METHODS = ("auth_crammd5", "auth_plain", "auth_login", "auth_xoauth2")

AsyncMethod = Callable[..., Awaitable[Any]]


def _target(smtp: Any) -> str:
    return f"smtp://{getattr(smtp, 'hostname', '') or 'unconnected'}"


def _not_connected(smtp: Any) -> None:
    # As the real transaction would fail first, before any address is looked at.
    if getattr(smtp, "protocol", None) is None:
        raise aiosmtplib.SMTPServerDisconnected("Server not connected")


def _shadow_sendmail(smtp: Any, call: inspect.BoundArguments) -> tuple[dict[str, Any], str]:
    sender, recipients = call.arguments["sender"], call.arguments["recipients"]
    message = call.arguments["message"]
    recipients = [recipients] if isinstance(recipients, str) else list(recipients)
    detail: dict[str, Any] = {"from": sender, "recipients": tuple(recipients)}
    try:
        _not_connected(smtp)
        for address in (sender, *recipients):
            parse_address(address)  # aiosmtplib's own check, which raises ValueError
        if isinstance(message, str):
            message = message.encode("ascii")
        detail["bytes"] = len(message)
        options = call.arguments.get("mail_options") or ()
        if not any(str(o).lower() == "smtputf8" for o in options):
            for address in (sender, *recipients):
                address.encode("ascii")
        problem = address_error(sender, sender=True)
        if problem is not None:
            raise aiosmtplib.SMTPSenderRefused(ADDRESS_REFUSED, problem, sender)
        refused = {}
        for address in recipients:
            problem = address_error(address, sender=False)
            if problem is not None:
                refused[address] = aiosmtplib.SMTPRecipientRefused(
                    ADDRESS_REFUSED, problem, address
                )
        if len(refused) == len(recipients):
            raise aiosmtplib.SMTPRecipientsRefused(list(refused.values()))
    except Exception as exc:
        record(Kind.MAIL_SEND, _target(smtp), "sendmail", detail, error=exc)
        raise
    detail["refused"] = tuple(refused)
    record(Kind.MAIL_SEND, _target(smtp), "sendmail", detail)
    responses = {a: aiosmtplib.SMTPResponse(e.code, e.message) for a, e in refused.items()}
    return responses, _SUPPRESSED


def _sendmail_hook(original: AsyncMethod) -> AsyncMethod:
    signature = inspect.signature(original)

    async def sendmail(self: Any, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return await original(self, *args, **kwargs)
        call = signature.bind(self, *args, **kwargs)
        return _shadow_sendmail(self, call)

    return mark_wrapped(sendmail, original)


def _data_hook(original: AsyncMethod) -> AsyncMethod:
    signature = inspect.signature(original)

    async def data(self: Any, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return await original(self, *args, **kwargs)
        message = signature.bind(self, *args, **kwargs).arguments["message"]
        _not_connected(self)
        # Abandon the envelope that mail()/rcpt() opened, so nothing is queued.
        await self.rset()
        detail = {"bytes": len(message), "via": "data"}
        record(Kind.MAIL_SEND, _target(self), "data", detail)
        return aiosmtplib.SMTPResponse(250, _SUPPRESSED)

    return mark_wrapped(data, original)


def _auth_hook(original: AsyncMethod) -> AsyncMethod:

    async def auth(self: Any, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return await original(self, *args, **kwargs)
        token = _in_auth.set(True)
        try:
            return await original(self, *args, **kwargs)
        finally:
            _in_auth.reset(token)

    return mark_wrapped(auth, original)


def _peer(protocol: Any) -> str:
    transport = getattr(protocol, "transport", None)
    try:
        host = transport.get_extra_info("peername")[0] if transport is not None else ""
    except Exception:  # no peer address: the record says so
        host = ""
    return f"smtp://{host or 'unconnected'}"


def _refuse_bytes(protocol: Any, problem: str, size: int) -> BaseException:
    return refuse(
        Kind.MAIL_SEND,
        _peer(protocol),
        "write",
        f"{problem} written to the server in shadow traffic (it could deliver mail)",
        remedy=SEND_REMEDY,
        detail={"bytes": size, "via": "write"},
    )


def _write_hook(original: Callable[..., None]) -> Callable[..., None]:

    def write(self: Any, data: bytes) -> None:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, data)
        problem = command_problem(data, in_auth=_in_auth.get())
        if problem:
            raise _refuse_bytes(self, problem, len(data))
        return original(self, data)

    return mark_wrapped(write, original)


def _data_command_hook(original: AsyncMethod) -> AsyncMethod:

    async def execute_data_command(self: Any, message: bytes, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return await original(self, message, *args, **kwargs)
        raise _refuse_bytes(self, "the SMTP command 'DATA'", len(message))

    return mark_wrapped(execute_data_command, original)


def _apply() -> None:
    smtp = vars(aiosmtplib.SMTP)
    _patches.setattr(aiosmtplib.SMTP, "sendmail", _sendmail_hook(smtp["sendmail"]))
    _patches.setattr(aiosmtplib.SMTP, "data", _data_hook(smtp["data"]))
    for name in _AUTH_METHODS:
        if name in smtp:
            _patches.setattr(aiosmtplib.SMTP, name, _auth_hook(smtp[name]))
    protocol = vars(SMTPProtocol)
    _patches.setattr(SMTPProtocol, "write", _write_hook(protocol["write"]))
    command = _data_command_hook(protocol["execute_data_command"])
    _patches.setattr(SMTPProtocol, "execute_data_command", command)


def install(**options: Any) -> None:
    """Suppress mail delivery through ``aiosmtplib`` in shadow; idempotent.

    It takes no options. Clients created before ``install()`` are covered too (the patch
    is on the class), so there is no per-object ``guard()``.
    """
    _patches.install(_apply, options)


def uninstall() -> None:
    """Restore aiosmtplib as it was before :func:`install`."""
    _patches.uninstall()
