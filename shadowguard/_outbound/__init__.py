"""Outbound HTTP in shadow traffic: the rules every HTTP client integration shares.

The client integrations (httpx, httpx2, requests and urllib3, http.client, aiohttp) ask
:class:`Rules` whether a shadow request may go out and turn its :class:`Reply` into their
own response objects; matching, redaction and recording live here, once:

- ``rules``: :class:`Allow`, :class:`Stub`, :class:`Reply`, :class:`Rules` (decide, then
  answer and record, or refuse with ``BLOCK``), and the shadow marker header;
- ``urls``: URLs and hosts normalized (and validated) for matching, redacted for recording;
- ``grpc_rules``: the same for gRPC calls (:class:`GrpcAllow`, :class:`GrpcStub`), whose
  methods are named exactly and refused unless a rule names them;
- ``ruleset``: what both rule sets share (their arguments checked, a stub's answer recorded);
- ``installed``: :class:`InstalledRules`, the rules ``install()`` gave a client integration;
- ``passdown``: a request one guard let out, handed down to a guarded library below it;
- ``stubs``: the stub header and :func:`is_stub`, which tells a stub response from Python;
- ``headers``: request headers as text, whatever the client built them from.
"""

from __future__ import annotations

from shadowguard._outbound import grpc_rules, rules
from shadowguard._outbound.grpc_rules import *  # noqa: F403 (its __all__ is re-exported below)
from shadowguard._outbound.headers import text_headers
from shadowguard._outbound.installed import InstalledRules
from shadowguard._outbound.passdown import judged_above, passing_down
from shadowguard._outbound.rules import *  # noqa: F403 (its __all__ is re-exported below)
from shadowguard._outbound.stubs import is_stub, mark_stub
from shadowguard._outbound.urls import REDACTED, canonical_url, normalize_url, redact_url, url_of

__all__ = [
    *rules.__all__,
    "REDACTED",
    "InstalledRules",
    *grpc_rules.__all__,
    "canonical_url",
    "is_stub",
    "judged_above",
    "mark_stub",
    "normalize_url",
    "passing_down",
    "redact_url",
    "text_headers",
    "url_of",
]
