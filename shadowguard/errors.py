"""The one exception family raised by shadowguard."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ShadowGuardError",
    "ShadowSideEffectBlocked",
    "missing_extra_error",
]


class ShadowGuardError(Exception):
    """Base class of every error shadowguard raises on purpose."""


class ConfigError(ShadowGuardError, ValueError):
    """A setting is malformed. The message names the setting and the accepted values."""


class ShadowSideEffectBlocked(ShadowGuardError):
    """A shadow request tried a side effect that cannot be safely suppressed.

    Raised *before* the side effect happens (the guard fails closed). The message says
    what was blocked and how to let the code run in shadow.
    """

    def __init__(self, what: str, *, remedy: str | None = None) -> None:
        self.what = what
        self.remedy = remedy
        message = f"shadowguard blocked a side effect in shadow traffic: {what}"
        if remedy:
            message = f"{message}. {remedy}"
        super().__init__(message)


def missing_extra_error(library: str, extra: str) -> ImportError:
    """The ImportError raised when an integration's library is missing."""
    hint = f"pip install 'shadowguard[{extra}]'" if extra else f"install {library!r}"
    return ImportError(f"shadowguard needs {library!r} for this integration: {hint}")
