"""What the SMTP guards (smtplib, aiosmtplib) share: address checks and safe command lines.

A shadow mail transaction is checked locally as the server would check it, then dropped;
below that, only whole command lines of commands that deliver nothing may reach a server.
"""

from __future__ import annotations

import re
from email.utils import parseaddr
from typing import Final

__all__ = ["ADDRESS_REFUSED", "SAFE_COMMANDS", "SEND_REMEDY", "address_error", "command_problem"]

#: The reply code a shadow transaction gives an address that could not be a mailbox.
ADDRESS_REFUSED: Final = 553
#: Commands that deliver nothing, which shadow code may send (LHLO is LMTP's EHLO).
SAFE_COMMANDS: Final = frozenset(
    {
        *("EHLO", "HELO", "LHLO", "STARTTLS", "AUTH", "NOOP", "RSET", "QUIT"),
        *("HELP", "VRFY", "EXPN", "MAIL", "RCPT"),
    }
)
#: How to send mail that the guards suppress.
SEND_REMEDY: Final = (
    "Send mail through sendmail()/send_message(), or mail()/rcpt()/data(), which "
    "shadowguard suppresses in shadow traffic; DATA, BDAT and message bytes written "
    "by hand are refused"
)
# An AUTH exchange's response lines are base64 (or "*", which cancels it).
_AUTH_RESPONSE = re.compile(r"(?:[A-Za-z0-9+/]*={0,2}|\*)")


def address_error(address: object, *, sender: bool) -> str | None:
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


def command_problem(data: str | bytes, *, in_auth: bool) -> str | None:
    """What in ``data`` could deliver mail, or None if it is whole lines of safe commands
    (and, ``in_auth``, an AUTH exchange's response lines)."""
    text = data if isinstance(data, str) else bytes(data).decode("latin-1")
    lines = text.split("\n")
    if lines[-1] != "":
        return "a partial SMTP command line"
    for line in lines[:-1]:
        line = line.removesuffix("\r")
        verb = line.split(" ", 1)[0].upper()
        if "\r" in line:
            return "a bare CR in an SMTP command line"
        if verb not in SAFE_COMMANDS and not (in_auth and _AUTH_RESPONSE.fullmatch(line)):
            return f"the SMTP command {verb[:16]!r}" if verb.isalpha() else "SMTP message text"
    return None
