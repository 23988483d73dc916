"""Outbound HTTP in shadow traffic: the rules every HTTP client integration shares.

The client integrations (httpx, httpx2, requests and urllib3) ask :class:`Rules` whether a
shadow request may go out and turn its :class:`Reply` into their own response objects;
matching, redaction and recording live here, once:

- ``rules``: :class:`Allow`, :class:`Stub`, :class:`Reply`, :class:`Rules` (decide, then
  answer and record, or refuse with ``BLOCK``), and the shadow marker header;
- ``urls``: URLs and hosts normalized (and validated) for matching, redacted for recording;
- ``stubs``: the stub header and :func:`is_stub`, which tells a stub response from Python.
"""

from __future__ import annotations

from shadowguard._outbound.rules import (
    BLOCK,
    DEFAULT_STUB,
    OTLP_ENDPOINT_VARS,
    SAFE_METHODS,
    Allow,
    Decision,
    Default,
    OutboundRequest,
    Reply,
    Rules,
    Stub,
    add_marker,
    guard_rules,
    marker,
)
from shadowguard._outbound.stubs import STUB_HEADER, is_stub, mark_stub
from shadowguard._outbound.urls import canonical_url, normalize_url, redact_url

__all__ = [
    "BLOCK",
    "DEFAULT_STUB",
    "OTLP_ENDPOINT_VARS",
    "SAFE_METHODS",
    "STUB_HEADER",
    "Allow",
    "Decision",
    "Default",
    "OutboundRequest",
    "Reply",
    "Rules",
    "Stub",
    "add_marker",
    "canonical_url",
    "guard_rules",
    "is_stub",
    "mark_stub",
    "marker",
    "normalize_url",
    "redact_url",
]
