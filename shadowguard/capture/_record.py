"""From a finished :class:`~._take.Take` to a :class:`~shadowguard.capture_format.CaptureRecord`.

Runs on the writer thread, after the response: the request id, the selected and redacted
headers, the decoded body, what the shadow scope suppressed and the validation errors it
met are worked out here, never on the request path.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from shadowguard.capture._body import describe_body
from shadowguard.capture._redact import REDACTED
from shadowguard.capture_format import SCHEMA_VERSION, CaptureRecord

if TYPE_CHECKING:
    from shadowguard.capture._take import Take
    from shadowguard.contract import Scope

__all__ = ["build_record"]

_REQUEST_ID = b"x-request-id"


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)


def _request_id(take: Take) -> tuple[str, bool]:
    """The request's ``x-request-id`` (generated when it had none or an empty one)."""
    found = take.request_id
    if found is None and take.request_headers is not None:
        for name, value in take.request_headers:
            if name == _REQUEST_ID or (len(name) == 12 and name.lower() == _REQUEST_ID):
                found = _text(value)
                break
    if found is not None:
        found = found.strip()
        if found:
            return found, False
    return str(uuid.uuid4()), True


def _pairs(headers: Any) -> Iterable[tuple[Any, Any]]:
    if isinstance(headers, Mapping):
        return headers.items()
    return headers  # type: ignore[no-any-return]


def _headers(take: Take) -> tuple[dict[str, str], str | None]:
    """The selected response headers (redacted where sensitive) and the content type."""
    wanted = take.capture.settings.headers
    redactor = take.capture.redactor
    selected: dict[str, str] = {}
    content_type = None
    for raw_name, raw_value in _pairs(take.headers):
        name = _text(raw_name).lower()
        if name == "content-type" and content_type is None:
            content_type = _text(raw_value)
        if name in wanted and name not in selected:
            selected[name] = REDACTED if redactor.matches(name) else _text(raw_value)
    return selected, content_type


def _suppressions(scope: Scope | None) -> tuple[dict[str, int], list[str]]:
    """Counts by kind, and the errors of writes the guards validated and refused as invalid.

    A refusal (action ``blocked``) is the guard's policy, not a validation error: it is
    counted with its kind, not listed.
    """
    if scope is None:
        return {}, []
    counts = {str(kind): int(n) for kind, n in list(scope.counts.items())}
    errors = []
    for suppression in list(scope.suppressed):
        error = suppression.error
        if error is None or suppression.blocked:
            continue
        message = str(getattr(error, "orig", None) or error).strip().splitlines()
        errors.append(f"{type(error).__name__}: {message[0] if message else ''}".rstrip(": "))
    return counts, errors


def build_record(take: Take) -> CaptureRecord:
    """The record of a finished request."""
    request_id, generated = _request_id(take)
    headers, content_type = _headers(take)
    chunks = take.chunks
    raw = None if chunks is None else b"".join(chunks)
    body, kind = describe_body(raw, take.size, content_type, take.capture.redactor)
    counts, errors = _suppressions(take.scope)
    end = take.end if take.end is not None else take.start
    return {
        "v": SCHEMA_VERSION,
        "request_id": request_id,
        "request_id_generated": generated,
        "label": take.label,
        "method": take.method,
        "route": take.route,
        "path": take.path,
        "status": take.status,
        "headers": headers,
        "body": body,
        "body_kind": kind,
        "body_bytes": take.size,
        "started_at": take.started_at,
        "duration_ms": round((end - take.start) * 1000, 3),
        "suppressions": counts,
        "validation_errors": errors,
        "exception": take.exception,
    }
