"""What every middleware shares: its start-up, which requests are shadow, the log line."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from shadowguard.capture import Capture, capture_from
from shadowguard.contract import (
    Detection,
    Scope,
    Settings,
    detect,
    get_settings,
    settings_or_defaults,
)

__all__ = [
    "Precheck",
    "detect_shadow",
    "environ_headers",
    "log_summary",
    "start_up",
]

logger = logging.getLogger("shadowguard.middleware")


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

    __slots__ = (
        "baggage",
        "environ_marker",
        "firsts",
        "lengths",
        "marker",
        "settings",
        "shadow_forced",
        "watched",
    )

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.shadow_forced = settings.forced is True
        header = settings.marker_header
        self.marker = header.encode("latin-1") if header else None
        self.environ_marker = "HTTP_" + header.upper().replace("-", "_") if header else None
        self.baggage = settings.baggage
        names = ["host", ":authority"]
        if header:
            names.append(header)
        if settings.baggage:
            names.append("baggage")
        self.watched = frozenset(name.encode("latin-1") for name in names)
        # Lower-casing keeps the length of any name that lower-cases to one of these
        # ASCII names, and its first byte is one of theirs in either case: only such
        # names can be one of them in another case.
        self.lengths = frozenset(len(name) for name in names)
        self.firsts = frozenset(ord(c) for name in names for c in (name[0], name[0].upper()))

    def asgi(self, headers: Iterable[tuple[bytes, bytes]]) -> bool:
        """May these ASGI headers carry a shadow signal?"""
        if self.shadow_forced:
            return True
        watched = self.watched
        lengths = self.lengths
        try:
            for name, value in headers:
                if name not in watched:
                    if len(name) not in lengths:
                        continue
                    if type(name) is not bytes:
                        return True  # not what ASGI promises: let detect() sort it out
                    if name[0] not in self.firsts:
                        continue
                    name = name.lower()
                    if name not in watched:
                        continue
                # find(), not "in": bytes.__contains__ first tries the needle as an int.
                if name == b"host" or name == b":authority":
                    if value.lower().find(b"-shadow") >= 0:
                        return True
                elif name == self.marker or value.lower().find(b"shadow") >= 0:  # baggage
                    return True
        except (TypeError, AttributeError):
            return True  # a name or value that is not bytes: detect() sorts it out
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


def start_up(
    options: Mapping[str, Any], capture: Any
) -> tuple[Settings | None, Precheck, Capture | None]:
    """Validate a middleware's options and ``capture`` at start-up.

    Options are :class:`~shadowguard.Settings` fields and override the environment; the
    settings returned are None without options ("follow the process settings"), but the
    environment is still validated here, so a malformed ``SHADOWGUARD_*`` variable stops the
    application from starting. Also returned: the first precheck, and the capture (see
    :func:`shadowguard.capture.capture_from`).
    """
    settings = None
    if options:
        settings = Settings.from_env(**options)
    else:
        get_settings()
    return settings, Precheck(settings or settings_or_defaults()), capture_from(capture)


def detect_shadow(headers: Iterable[tuple[Any, Any]], settings: Settings) -> Detection | None:
    """:func:`detect` for a request the precheck could not clear: None unless shadow."""
    detection = detect(headers, settings=settings)
    return detection if detection.shadow else None


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
