"""OpenTelemetry tagging of shadow traffic. Fails open: it may log, it never raises.

Span attributes: ``shadow_mode`` (on every span current while shadow) and, per kind of
suppression, ``db.write_suppressed``, ``messaging.publish_suppressed``,
``http.request_stubbed``, ``mail.send_suppressed``, ``shadowguard.call_suppressed``,
``messaging.transaction_suppressed``; a span event ``shadowguard.suppressed`` per
suppression. Metrics: the counter ``shadowguard.suppressed`` (attributes ``kind``,
``action``, ``shadow``; ``action="blocked"`` counts refusals), the counter
``shadowguard.signals_ignored`` (attribute ``signal``), the counter
``shadowguard.suppressed_after_scope_end`` (attribute ``kind``), and the histogram
``shadowguard.request.duration`` in seconds (attributes ``shadow``, ``http.route``,
``http.response.status_code``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace

from shadowguard._suppression import Action, Kind

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shadowguard._suppression import Suppression

__all__ = [
    "SHADOW_ATTRIBUTE",
    "SUPPRESSED_ATTRIBUTES",
    "mark_span_shadow",
    "record_late_suppression",
    "record_request_duration",
    "record_signals_ignored",
    "record_suppression",
]

logger = logging.getLogger("shadowguard.telemetry")

SHADOW_ATTRIBUTE = "shadow_mode"
SUPPRESSED_ATTRIBUTES: Mapping[str, str] = {
    Kind.DB_COMMIT: "db.write_suppressed",
    Kind.KAFKA_PRODUCE: "messaging.publish_suppressed",
    Kind.KAFKA_TRANSACTION: "messaging.transaction_suppressed",
    Kind.HTTP_REQUEST: "http.request_stubbed",
    Kind.MAIL_SEND: "mail.send_suppressed",
    Kind.CALL: "shadowguard.call_suppressed",
}
_FALLBACK_ATTRIBUTE = "shadowguard.suppressed"

_meter = metrics.get_meter("shadowguard")
_suppressed_counter = _meter.create_counter(
    "shadowguard.suppressed",
    unit="{operation}",
    description="Side effects suppressed in shadow traffic",
)
_signals_ignored_counter = _meter.create_counter(
    "shadowguard.signals_ignored",
    unit="{request}",
    description="Per-request shadow signals ignored (SHADOW_MODE=false or a wrong marker secret)",
)
_late_counter = _meter.create_counter(
    "shadowguard.suppressed_after_scope_end",
    unit="{operation}",
    description="Side effects suppressed in a shadow scope that had already ended "
    "(work that outlived the shadow request that started it)",
)
_request_duration = _meter.create_histogram(
    "shadowguard.request.duration",
    unit="s",
    description="Duration of requests served, primary and shadow",
)


def mark_span_shadow() -> None:
    """Tag the current span with ``shadow_mode=true``."""
    try:
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute(SHADOW_ATTRIBUTE, True)
    except Exception:
        logger.debug("shadowguard: could not tag the current span", exc_info=True)


def record_suppression(suppression: Suppression) -> None:
    """Add a span event and attribute, and count the suppression."""
    try:
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute(SHADOW_ATTRIBUTE, True)
            span.set_attribute(
                SUPPRESSED_ATTRIBUTES.get(suppression.kind, _FALLBACK_ATTRIBUTE), True
            )
            attributes: dict[str, Any] = {"kind": suppression.kind, "target": suppression.target}
            if suppression.error is not None:
                attributes["error"] = type(suppression.error).__name__
            span.add_event("shadowguard.suppressed", attributes)
        action = suppression.detail.get("action", Action.SUPPRESSED)
        _suppressed_counter.add(1, {"kind": suppression.kind, "action": action, "shadow": True})
    except Exception:
        logger.debug("shadowguard: could not record a suppression in telemetry", exc_info=True)


def record_signals_ignored(signals: tuple[str, ...]) -> None:
    """Count per-request shadow signals that were present but not trusted."""
    try:
        for signal in signals:
            _signals_ignored_counter.add(1, {"signal": signal})
    except Exception:
        logger.debug("shadowguard: could not count ignored signals", exc_info=True)


def record_request_duration(
    seconds: float, *, shadow: bool, route: str | None, status: int | None
) -> None:
    """Record one served request in ``shadowguard.request.duration``."""
    try:
        attributes: dict[str, Any] = {"shadow": shadow}
        if route:
            attributes["http.route"] = route
        if status is not None:
            attributes["http.response.status_code"] = status
        _request_duration.record(seconds, attributes)
    except Exception:
        logger.debug("shadowguard: could not record a request duration", exc_info=True)


def record_late_suppression(suppression: Suppression) -> None:
    """Count a suppression made in a shadow scope that had already ended."""
    try:
        _late_counter.add(1, {"kind": suppression.kind})
    except Exception:
        logger.debug("shadowguard: could not count a late suppression", exc_info=True)
