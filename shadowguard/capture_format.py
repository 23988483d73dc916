"""The capture record: one request as a middleware saw it, the unit ``shadowguard compare`` joins.

A record is a JSON object, the same in every sink (SQLite, JSON lines, later Kafka): the
sinks store :func:`encode`'s text and readers call :func:`decode`. Version 1 fields:

``v``
    Schema version (int). A reader refuses a version it does not know, with the version in
    the message; fields it does not know within a known version are ignored.
``request_id``
    The join key: ``x-request-id`` as the request carried it (Envoy keeps it identical on
    the mirrored copy). ``request_id_generated`` is true when the request had none and the
    middleware made one; such records cannot pair.
``label``
    Which side: ``primary``, ``shadow``, ``secondary`` (old code, shadow) or ``candidate``
    (new code, shadow), or any label the operator sets.
``method``, ``route``, ``path``
    The HTTP method; the route template when the framework knows it (``/orders/{id}``),
    else None; the raw path (without the query string), used when ``route`` is None.
``status``
    The response status, or None when the application raised before starting a response.
``headers``
    Selected response headers, names lower-cased.
``body``, ``body_kind``, ``body_bytes``
    ``body_kind`` is ``json`` (``body`` is the decoded value, after redaction), ``text``
    (``body`` is the text), ``binary`` or ``empty`` (``body`` None) or ``truncated`` (the
    body was larger than the capture bound; ``body`` None). ``body_bytes`` is the size seen.
``started_at``, ``duration_ms``
    Wall-clock start (seconds since the epoch) and the time to the end of the response body.
``suppressions``
    Counts of suppressed side effects by kind (empty for primary).
``validation_errors``
    Messages of writes the shadow's guards refused as invalid (the primary would have hit
    them too).
``exception``
    The qualified type name of an exception the application raised, else None.
"""

from __future__ import annotations

import json
from typing import Any, TypedDict

__all__ = ["BODY_KINDS", "SCHEMA_VERSION", "CaptureRecord", "RecordError", "decode", "encode"]

SCHEMA_VERSION = 1
BODY_KINDS = frozenset({"json", "text", "binary", "empty", "truncated"})


class CaptureRecord(TypedDict):
    """One captured request (schema version 1); see the module docstring."""

    v: int
    request_id: str
    request_id_generated: bool
    label: str
    method: str
    route: str | None
    path: str
    status: int | None
    headers: dict[str, str]
    body: Any
    body_kind: str
    body_bytes: int
    started_at: float
    duration_ms: float
    suppressions: dict[str, int]
    validation_errors: list[str]
    exception: str | None


class RecordError(ValueError):
    """A stored record that cannot be read: corrupt, or of an unknown schema version."""


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "request_id": str,
    "label": str,
    "method": str,
    "path": str,
    "started_at": (int, float),
    "duration_ms": (int, float),
}


def encode(record: CaptureRecord) -> str:
    """The record as one line of compact JSON."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=repr)


def decode(text: str | bytes) -> CaptureRecord:
    """Read one stored record; :class:`RecordError` says what is wrong with it."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RecordError(f"not a JSON object but {type(data).__name__}")
    version = data.get("v")
    if version != SCHEMA_VERSION:
        raise RecordError(
            f"unknown schema version {version!r} (this shadowguard reads {SCHEMA_VERSION})"
        )
    for name, kind in _REQUIRED.items():
        value = data.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise RecordError(f"field {name!r} is missing or of the wrong type: {value!r}")
    status = data.get("status")
    if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
        raise RecordError(f"field 'status' is not an integer: {status!r}")
    kind = data.get("body_kind", "empty")
    if kind not in BODY_KINDS:
        raise RecordError(f"field 'body_kind' is {kind!r}, not one of {sorted(BODY_KINDS)}")
    record: CaptureRecord = {
        "v": SCHEMA_VERSION,
        "request_id": data["request_id"],
        "request_id_generated": bool(data.get("request_id_generated", False)),
        "label": data["label"],
        "method": data["method"],
        "route": data.get("route") if isinstance(data.get("route"), str) else None,
        "path": data["path"],
        "status": status,
        "headers": _str_map(data.get("headers")),
        "body": data.get("body"),
        "body_kind": kind,
        "body_bytes": int(data.get("body_bytes") or 0),
        "started_at": float(data["started_at"]),
        "duration_ms": float(data["duration_ms"]),
        "suppressions": {
            str(k): int(v)
            for k, v in (data.get("suppressions") or {}).items()
            if isinstance(v, int) and not isinstance(v, bool)
        },
        "validation_errors": [str(m) for m in data.get("validation_errors") or []],
        "exception": data.get("exception") if isinstance(data.get("exception"), str) else None,
    }
    return record


def _str_map(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k).lower(): str(v) for k, v in value.items()}
