"""The error ``shadowguard compare`` raises when it cannot run."""

from __future__ import annotations

from shadowguard.errors import ShadowGuardError

__all__ = ["CompareError"]


class CompareError(ShadowGuardError, ValueError):
    """A source cannot be read or an option is malformed; the message is one line saying which."""
