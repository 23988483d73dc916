"""What every middleware shares: settings, the precheck, a re-enterable scope, the summary log."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from shadowguard.contract import RequestScope, Scope, Settings, get_settings

__all__ = [
    "Precheck",
    "RequestScope",
    "environ_headers",
    "log_summary",
    "settings_from_options",
]

logger = logging.getLogger("shadowguard.middleware")


def settings_from_options(options: Mapping[str, Any]) -> Settings | None:
    """Validate middleware options at start-up; None means "follow the process settings".

    Options are :class:`~shadowguard.Settings` fields and override the environment.
    Without options the environment is still validated here, so a malformed
    ``SHADOWGUARD_*`` variable stops the application from starting.
    """
    if options:
        return Settings.from_env(**options)
    get_settings()
    return None


def environ_headers(environ: Mapping[str, Any], settings: Settings) -> list[tuple[str, str]]:
    """The headers :func:`shadowguard.detect` reads, from a WSGI environ or Django ``META``."""
    found = []
    host = environ.get("HTTP_HOST")
    if host is not None:
        found.append(("host", host))
    if settings.marker_header:
        value = environ.get("HTTP_" + settings.marker_header.upper().replace("-", "_"))
        if value is not None:
            found.append((settings.marker_header, value))
    if settings.baggage:
        baggage = environ.get("HTTP_BAGGAGE")
        if baggage is not None:
            found.append(("baggage", baggage))
    return found


class Precheck:
    """A cheap scan that clears most primary requests without calling :func:`detect`.

    It answers False only when no shadow signal can be present: no marker header at all,
    no ``-shadow`` anywhere in a Host/``:authority`` value, no ``shadow`` in baggage, and
    ``SHADOW_MODE`` not true. Anything else goes to :func:`detect`, the one resolver, so
    the precheck can make a request slower but never changes a verdict.
    """

    __slots__ = ("baggage", "environ_marker", "marker", "settings", "shadow_forced")

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.shadow_forced = settings.forced is True
        header = settings.marker_header
        self.marker = header.encode("latin-1") if header else None
        self.environ_marker = "HTTP_" + header.upper().replace("-", "_") if header else None
        self.baggage = settings.baggage

    def asgi(self, headers: Iterable[tuple[bytes, bytes]]) -> bool:
        """May these ASGI headers carry a shadow signal?"""
        if self.shadow_forced:
            return True
        marker = self.marker
        for name, value in headers:
            if type(name) is not bytes or type(value) is not bytes:
                return True  # not what ASGI promises: let detect() sort it out
            name = name.lower()
            if name == b"host" or name == b":authority":
                if b"-shadow" in value.lower():
                    return True
            elif name == marker or (
                self.baggage and name == b"baggage" and b"shadow" in value.lower()
            ):
                return True
        return False

    def environ(self, environ: Mapping[str, Any]) -> bool:
        """May this WSGI environ (or Django ``META``) carry a shadow signal?"""
        if self.shadow_forced:
            return True
        host = environ.get("HTTP_HOST")
        if host is not None and "-shadow" in str(host).lower():
            return True
        if self.environ_marker is not None and self.environ_marker in environ:
            return True
        return self.baggage and "shadow" in str(environ.get("HTTP_BAGGAGE", "")).lower()


def log_summary(method: str, path: str, scope: Scope, status: int | None) -> None:
    """One debug line per shadow request: what it suppressed."""
    if not logger.isEnabledFor(logging.DEBUG):
        return
    if scope.total:
        what = ", ".join(f"{n} {kind}" for kind, n in sorted(scope.counts.items()))
    else:
        what = "nothing"
    logger.debug(
        "shadowguard: shadow request %s %s -> %s suppressed %s", method, path, status, what
    )
