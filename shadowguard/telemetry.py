"""OpenTelemetry tagging of shadow traffic. Fails open: it may log, it never raises.

Span attributes: ``shadow_mode`` (on every span current while shadow) and, per kind of
suppression, ``db.write_suppressed``, ``messaging.publish_suppressed``,
``http.request_stubbed``, ``mail.send_suppressed``, ``shadowguard.call_suppressed``,
``messaging.transaction_suppressed``, ``redis.command_suppressed``; a span event ``shadowguard.suppressed`` per
suppression. Metrics: the counter ``shadowguard.suppressed`` (attributes ``kind``,
``action``, ``shadow``; ``action="blocked"`` counts refusals), the counter
``shadowguard.signals_ignored`` (attribute ``signal``), the counter
``shadowguard.suppressed_after_scope_end`` (attribute ``kind``), the counter
``shadowguard.shadow_shed`` (attribute ``reason``: ``limit``, ``budget``, ``disconnected``),
and the histogram
``shadowguard.request.duration`` in seconds (attributes ``shadow``, ``http.route``,
``http.response.status_code``).

With the OpenTelemetry SDK, one measurement costs the SDK 10 us or more, five times what
the middleware may add to a request. So once an SDK collects our instruments (``collecting``
is then true), measurements wait for its next collection: counter increments are summed
here per instrument and attribute set (a dict update under a lock: memory grows with the
attribute sets, not with the traffic), request durations are queued (a deque append), and
the collection hands both to the SDK unchanged: counts, sums and buckets are exactly what
recording them on the request would have given. With the API alone they are dropped at
once, as its no-op instruments would drop them, and the middleware does not even time a
primary request.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Generator, Iterable, Mapping
from time import perf_counter
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace

from shadowguard._suppression import Action, Kind

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Observation

    from shadowguard._suppression import Suppression

__all__ = [
    "SHADOW_ATTRIBUTE",
    "SUPPRESSED_ATTRIBUTES",
    "mark_span_shadow",
    "record_capture_dropped",
    "record_late_suppression",
    "record_request_duration",
    "record_shadow_shed",
    "record_signals_ignored",
    "record_suppression",
    "request_served",
]

logger = logging.getLogger("shadowguard.telemetry")

SHADOW_ATTRIBUTE = "shadow_mode"
SUPPRESSED_ATTRIBUTES: Mapping[str, str] = {
    Kind.DB_COMMIT: "db.write_suppressed",
    Kind.KAFKA_PRODUCE: "messaging.publish_suppressed",
    Kind.KAFKA_TRANSACTION: "messaging.transaction_suppressed",
    Kind.KAFKA_OFFSETS: "messaging.commit_suppressed",
    Kind.KAFKA_CONSUME: "messaging.receive_blocked",
    Kind.HTTP_REQUEST: "http.request_stubbed",
    Kind.MAIL_SEND: "mail.send_suppressed",
    Kind.CALL: "shadowguard.call_suppressed",
    Kind.REDIS_COMMAND: "redis.command_suppressed",
    Kind.CELERY_TASK: "messaging.publish_suppressed",
    Kind.CELERY_MESSAGE: "messaging.publish_suppressed",
    Kind.CELERY_CONSUME: "messaging.receive_blocked",
    Kind.AWS_CALL: "aws.call_suppressed",
    Kind.AMQP_PUBLISH: "messaging.publish_suppressed",
    Kind.AMQP_CONSUME: "messaging.receive_blocked",
    Kind.AMQP_ACK: "messaging.ack_suppressed",
    Kind.AMQP_ADMIN: "messaging.admin_suppressed",
}
_FALLBACK_ATTRIBUTE = "shadowguard.suppressed"

#: Request durations held for the next collection, at most; past it they are recorded
#: directly (exact, at the SDK's price): a reader that stops collecting costs no more memory.
MAX_PENDING = 1 << 16
#: Attribute sets kept ready-made, at most (the SDK's default cardinality limit).
MAX_CACHED_ATTRIBUTES = 2000

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
_shed_counter = _meter.create_counter(
    "shadowguard.shadow_shed",
    unit="{request}",
    description="Shadow requests not started, or cancelled, to protect the primary",
)
_capture_dropped_counter = _meter.create_counter(
    "shadowguard.capture_dropped",
    unit="{record}",
    description="Capture records not written: the writer's queue was full, or the sink failed",
)
#: OpenTelemetry's recommended boundaries for HTTP server durations, in seconds; the SDK's
#: defaults (0, 5, 10, ... meant for milliseconds) would put every request in one bucket.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)


def seconds_histogram(meter: Any, name: str, description: str) -> Any:
    """A histogram of durations in seconds on ``meter``, advising :data:`DURATION_BUCKETS`
    as its bucket boundaries."""
    try:
        return meter.create_histogram(
            name,
            unit="s",
            description=description,
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
    except TypeError:  # opentelemetry-api before 1.23 has no advisory boundaries
        return meter.create_histogram(name, unit="s", description=description)


_request_duration = seconds_histogram(
    _meter, "shadowguard.request.duration", "Duration of requests served, primary and shadow"
)

#: True once an SDK created our collection hook (at set_meter_provider, or at import when
#: one was set before): from then on it calls the hook at every collection, which hands the
#: waiting measurements over. Until then the API's no-op instruments would drop them all,
#: so code on the request path may skip measuring while this is false.
collecting = False
_pending_durations: deque[tuple[float, bool, str | None, int | None]] = deque()
#: Counter increments waiting for the collection, summed: (counter, id(attributes)) ->
#: [count, attributes]. The attribute sets are the cached ones, so the keys are few.
_pending_counts: dict[tuple[Any, int], list[Any]] = {}
_counts_lock = threading.Lock()


def mark_span_shadow() -> None:
    """Tag the current span with ``shadow_mode=true``."""
    try:
        span = trace.get_current_span()
        if span.is_recording():
            _tag(span, SHADOW_ATTRIBUTE)
    except Exception:
        logger.debug("shadowguard: could not tag the current span", exc_info=True)


def record_suppression(suppression: Suppression) -> None:
    """Add a span event and attributes, and count the suppression."""
    try:
        span = trace.get_current_span()
        if span.is_recording():
            _tag(span, SHADOW_ATTRIBUTE)
            _tag(span, SUPPRESSED_ATTRIBUTES.get(suppression.kind, _FALLBACK_ATTRIBUTE))
            attributes: dict[str, Any] = {"kind": suppression.kind, "target": suppression.target}
            if suppression.error is not None:
                attributes["error"] = type(suppression.error).__name__
            span.add_event("shadowguard.suppressed", attributes)
        action = suppression.detail.get("action", Action.SUPPRESSED)
        _count(_suppressed_counter, _suppressed_attributes(suppression.kind, action))
    except Exception:
        logger.debug("shadowguard: could not record a suppression in telemetry", exc_info=True)


def record_signals_ignored(signals: tuple[str, ...]) -> None:
    """Count per-request shadow signals that were present but not trusted."""
    try:
        for signal in signals:
            _count(_signals_ignored_counter, _signal_attributes(signal))
    except Exception:
        logger.debug("shadowguard: could not count ignored signals", exc_info=True)


def record_request_duration(
    seconds: float, *, shadow: bool, route: str | None, status: int | None
) -> None:
    """Record one served request in ``shadowguard.request.duration``."""
    request_served(seconds, shadow, route, status)


def request_served(seconds: float, shadow: bool, route: str | None, status: int | None) -> None:
    """:func:`record_request_duration` for the middleware's hot path (positional)."""
    if not collecting:
        return  # the API alone: its no-op instrument would drop the measurement
    if len(_pending_durations) < MAX_PENDING:
        _pending_durations.append((seconds, shadow, route, status))
        return
    try:
        _request_duration.record(seconds, _duration_attributes(shadow, route, status))
    except Exception:
        logger.debug("shadowguard: could not record a request duration", exc_info=True)


# The span tagged last and the attributes it was given. A shadow request enters its scope
# several times (a WSGI body chunk by chunk) and may suppress many calls: each attribute
# is set once per span, not each time (about 1 us each with the SDK). Threads may race on
# it; the worst outcome is an attribute set twice, never one left out.
_tagged: tuple[Any, frozenset[str]] = (None, frozenset())


def _tag(span: Any, attribute: str) -> None:
    global _tagged
    tagged_span, attributes = _tagged
    if tagged_span is not span:
        attributes = frozenset()
    elif attribute in attributes:
        return
    span.set_attribute(attribute, True)
    _tagged = (span, attributes | {attribute})


def _count(counter: Any, attributes: Mapping[str, Any], n: int = 1) -> None:
    if not collecting:
        return
    key = (counter, id(attributes))
    with _counts_lock:
        pending = _pending_counts.get(key)
        if pending is not None:
            pending[0] += n
            return
        if len(_pending_counts) < MAX_CACHED_ATTRIBUTES:
            # The entry keeps ``attributes`` alive, so its id stays its own until handed over.
            _pending_counts[key] = [n, attributes]
            return
    counter.add(n, attributes)  # an attribute set per call: no sum to gain, record it now


# Ready-made attribute sets. A cached mapping is never mutated, so sharing it is safe.
_durations_cache: dict[tuple[bool, str | None, int | None], Mapping[str, Any]] = {}
_suppressed_cache: dict[tuple[str, str], Mapping[str, Any]] = {}
_signal_cache: dict[str, Mapping[str, Any]] = {}
_late_cache: dict[str, Mapping[str, Any]] = {}


def _duration_attributes(shadow: bool, route: str | None, status: int | None) -> Mapping[str, Any]:
    key = (shadow, route, status)
    found = _durations_cache.get(key)
    if found is None:
        attributes: dict[str, Any] = {"shadow": shadow}
        if route:
            attributes["http.route"] = route
        if status is not None:
            attributes["http.response.status_code"] = status
        found = _cached(_durations_cache, key, attributes)
    return found


def _suppressed_attributes(kind: str, action: str) -> Mapping[str, Any]:
    found = _suppressed_cache.get((kind, action))
    if found is None:
        attributes = {"kind": kind, "action": action, "shadow": True}
        found = _cached(_suppressed_cache, (kind, action), attributes)
    return found


def _one_attribute(cache: dict[str, Mapping[str, Any]], name: str, value: str) -> Mapping[str, Any]:
    """The ready-made ``{name: value}`` of ``cache``."""
    found = cache.get(value)
    if found is None:
        found = _cached(cache, value, {name: value})
    return found


def _signal_attributes(signal: str) -> Mapping[str, Any]:
    return _one_attribute(_signal_cache, "signal", signal)


def _cached(
    cache: dict[Any, Mapping[str, Any]], key: Any, value: dict[str, Any]
) -> Mapping[str, Any]:
    # Route templates and status codes are few; a framework that reports raw paths would
    # not grow this cache past its bound (the SDK caps the series anyway).
    if len(cache) < MAX_CACHED_ATTRIBUTES:
        cache[key] = value
    return value


def _export_at_collection() -> Generator[Iterable[Observation], CallbackOptions, None]:
    """The collection hook: an observable callback that observes nothing itself.

    The SDK advances a generator callback to its first ``yield`` when it creates the
    instrument (at ``set_meter_provider``, or at once if one is already set): from that
    moment measurements are queued, and every collection first hands them over.
    """
    global collecting
    collecting = True
    options = yield ()
    while True:
        try:
            _hand_over(options.timeout_millis)
        except Exception:
            logger.debug("shadowguard: could not hand measurements to the SDK", exc_info=True)
        options = yield ()


def _hand_over(timeout_millis: float) -> None:
    """Record the waiting measurements; what the time budget leaves waits for the next one."""
    with _counts_lock:
        counts = list(_pending_counts.items())
        _pending_counts.clear()
    for (counter, _), (n, attributes) in counts:
        counter.add(n, attributes)

    # Half of the callback's budget: the SDK fails the whole collection past it.
    deadline = perf_counter() + timeout_millis / 2000
    pop = _pending_durations.popleft
    record = _request_duration.record
    while perf_counter() < deadline:
        try:
            seconds, shadow, route, status = pop()
        except IndexError:
            return
        record(seconds, _duration_attributes(shadow, route, status))


def _forget_pending() -> None:
    # A forked child (a pre-forking server's worker) must not hand over its parent's, and
    # must not inherit the lock held by a parent's thread at the fork.
    global _counts_lock
    _counts_lock = threading.Lock()
    _pending_durations.clear()
    _pending_counts.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pending)

_collection_hook = _meter.create_observable_counter(
    "shadowguard.telemetry.collection",
    callbacks=[_export_at_collection()],
    description="Hands shadowguard's queued measurements to the SDK; reports nothing itself",
)


def record_late_suppression(suppression: Suppression) -> None:
    """Count a suppression made in a shadow scope that had already ended."""
    try:
        _count(_late_counter, _one_attribute(_late_cache, "kind", suppression.kind))
    except Exception:
        logger.debug("shadowguard: could not count a late suppression", exc_info=True)


_shed_cache: dict[str, Mapping[str, Any]] = {}


def record_shadow_shed(reason: str) -> None:
    """Count a shadow request shed (not started) or cancelled, by ``reason``."""
    try:
        _count(_shed_counter, _one_attribute(_shed_cache, "reason", reason))
    except Exception:
        logger.debug("shadowguard: could not count a shed shadow request", exc_info=True)


_capture_dropped_cache: dict[str, Mapping[str, Any]] = {}


def record_capture_dropped(reason: str, count: int = 1) -> None:
    """Count ``count`` capture records dropped, by ``reason``."""
    try:
        _count(
            _capture_dropped_counter,
            _one_attribute(_capture_dropped_cache, "reason", reason),
            count,
        )
    except Exception:
        logger.debug("shadowguard: could not count dropped capture records", exc_info=True)
