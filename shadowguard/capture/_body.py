"""A response body as a record holds it: decoded JSON, text, or only its kind and size."""

from __future__ import annotations

import json
from typing import Any

from shadowguard.capture._redact import Redactor

__all__ = ["describe_body"]

# Types whose bodies are never text, whatever their bytes decode to.
_BINARY_PREFIXES = ("image/", "audio/", "video/", "font/", "application/octet-stream")
_BINARY_TYPES = frozenset({"application/zip", "application/gzip", "application/pdf"})


def _media_type(content_type: str | None) -> tuple[str, str | None]:
    """``(media type, charset)`` of a ``content-type`` value, lower-cased."""
    if not content_type:
        return "", None
    media, *params = content_type.split(";")
    charset = None
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"').lower() or None
    return media.strip().lower(), charset


def _is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json") or media == "text/json"


def describe_body(
    body: bytes | None, size: int, content_type: str | None, redactor: Redactor
) -> tuple[Any, str]:
    """``(body, body_kind)`` of a response body of ``size`` bytes.

    ``body`` None with a size means the body was over the capture bound: ``truncated``.
    JSON is decoded when the content type says JSON (or says nothing and the body parses),
    then redacted; text is kept as text; anything else is ``binary``, kept as its size only.
    """
    if body is None:
        return None, "truncated" if size else "empty"
    if not body:
        return None, "empty"
    media, charset = _media_type(content_type)
    if media.startswith(_BINARY_PREFIXES) or media in _BINARY_TYPES:
        return None, "binary"
    if _is_json(media) or not media:
        try:
            value = json.loads(body)
        except (ValueError, RecursionError):
            pass
        else:
            return redactor.json(value), "json"
    try:
        return body.decode(charset or "utf-8"), "text"
    except (UnicodeDecodeError, LookupError):
        return None, "binary"
