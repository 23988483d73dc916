"""Deciding whether one request is shadow traffic: one resolver, one precedence."""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias
from urllib.parse import unquote

from shadowguard import _config, telemetry
from shadowguard._config import FALSE_VALUES, TRUE_VALUES, Settings
from shadowguard._hosts import host_is_shadow

__all__ = ["Detection", "Signal", "detect", "host_is_shadow"]

Signal = Literal["env", "marker", "host", "baggage"]
HeaderValue: TypeAlias = "str | bytes"
Headers: TypeAlias = "Mapping[str, str] | Mapping[bytes, bytes] | Mapping[str, HeaderValue] | Iterable[tuple[HeaderValue, HeaderValue]]"


@dataclass(frozen=True)
class Detection:
    """The verdict on one request.

    ``signal`` names what decided (``"env"``, ``"marker"``, ``"host"``, ``"baggage"``) or is
    None for a primary request with no signal. ``ignored`` lists shadow signals that were
    present but not trusted (with ``SHADOW_MODE=false``, or a marker with the wrong secret).
    """

    shadow: bool
    signal: Signal | None = None
    ignored: tuple[Signal, ...] = ()

    def __bool__(self) -> bool:
        return self.shadow


def _text(value: HeaderValue) -> str:
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)


def _header_values(headers: Headers, names: frozenset[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    for raw_name, raw_value in items:
        name = _text(raw_name).lower()
        if name in names:
            found.setdefault(name, []).append(_text(raw_value))
    return found


def _baggage_says_shadow(values: list[str]) -> bool:
    for value in values:
        for member in value.split(","):
            key, sep, rest = member.partition("=")
            if not sep or key.strip() != "shadow":
                continue
            entry = unquote(rest.split(";", 1)[0].strip())
            if entry.strip().lower() in TRUE_VALUES:
                return True
    return False


def _marker_says_shadow(values: list[str], secret: str | None) -> bool | None:
    """True (trusted marker), False (present but not trusted), None (absent or explicitly off)."""
    present = False
    for value in values:
        value = value.strip()
        if secret is not None:
            present = True
            if hmac.compare_digest(value.encode("utf-8", "replace"), secret.encode("utf-8")):
                return True
        elif value.lower() not in FALSE_VALUES:
            # Without a secret any value but an explicit "false" counts: a mirror that
            # sets the header must not leak because of an unexpected value.
            return True
    return False if present else None


def detect(headers: Headers, *, settings: Settings | None = None) -> Detection:
    """Decide whether the request with ``headers`` is shadow traffic.

    ``headers``: a mapping or a list of ``(name, value)`` pairs, bytes or str (ASGI,
    WSGI-derived, Django's ``request.headers``). Precedence: ``SHADOW_MODE``, then the
    marker header, then the ``-shadow`` Host/``:authority`` suffix, then W3C baggage when
    enabled. ``X-Forwarded-Host`` is never consulted.
    """
    s = settings if settings is not None else _config.get_settings()
    names = {"host", ":authority"}
    if s.marker_header:
        names.add(s.marker_header)
    if s.baggage:
        names.add("baggage")
    found = _header_values(headers, frozenset(names))

    signals: list[Signal] = []
    untrusted: list[Signal] = []
    if s.marker_header and s.marker_header in found:
        verdict = _marker_says_shadow(found[s.marker_header], s.marker_secret)
        if verdict:
            signals.append("marker")
        elif verdict is False:
            untrusted.append("marker")
    if s.host_suffix:
        hosts = found.get("host", []) + found.get(":authority", [])
        allowed = s.shadow_hosts
        if any(host_is_shadow(h, allowed=allowed) for h in hosts):
            signals.append("host")
    if s.baggage and _baggage_says_shadow(found.get("baggage", [])):
        signals.append("baggage")

    forced = s.forced
    if forced is not None:
        ignored = tuple(signals + untrusted) if not forced else tuple(untrusted)
        if ignored:
            telemetry.record_signals_ignored(ignored)
        return Detection(forced, "env", ignored)
    if untrusted:
        telemetry.record_signals_ignored(tuple(untrusted))
    if signals:
        return Detection(True, signals[0], tuple(untrusted))
    return Detection(False, None, tuple(untrusted))
