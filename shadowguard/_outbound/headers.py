"""Request headers as text, whatever the client built them from.

HTTP clients accept header names and values as ``bytes`` as well as ``str`` (botocore
sends every signed value as bytes), and urllib3's ``HTTPHeaderDict`` joins repeated
values with ``", "`` only when they are text. What a stub callable and the record see
is always ``str``: bytes decoded as Latin-1, as they go on the wire.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["text_headers"]


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("latin-1")
    return str(value)


def _pairs(headers: Any) -> Iterable[tuple[Any, Any]]:
    # urllib3's HTTPHeaderDict yields each value of a repeated header on its own here,
    # where reading it by key would join bytes and str and fail.
    iteritems = getattr(headers, "iteritems", None)
    if callable(iteritems):
        return iteritems()  # type: ignore[no-any-return]
    if isinstance(headers, Mapping):
        return headers.items()
    return headers  # type: ignore[no-any-return]


def text_headers(headers: Any) -> dict[str, str]:
    """``headers`` (a mapping, an ``HTTPHeaderDict`` or pairs) as a ``str`` dict;
    repeated names (case-insensitively) are joined with ``", "``."""
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for raw_name, raw_value in _pairs(headers or ()):
        name, value = _text(raw_name), _text(raw_value)
        first = seen.setdefault(name.lower(), name)
        out[first] = f"{out[first]}, {value}" if first in out else value
    return out
