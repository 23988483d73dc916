"""How a stub response is recognised: by its header, and from Python by :func:`is_stub`.

Every client integration marks the response object it builds for a stub (an
``httpx.Response``, ``requests.Response``, ``urllib3.HTTPResponse``,
``http.client.HTTPResponse`` or ``aiohttp.ClientResponse``, and the call object of a
stubbed gRPC call) with :func:`mark_stub`, so code that keeps responses (a cache) can tell a stub apart without
reading headers, which an application may copy onto a real response.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

__all__ = ["STUB_HEADER", "is_stub", "mark_stub"]

#: Header carried by every stub response, so callers and logs can tell stubs apart.
STUB_HEADER: Final = "x-shadowguard-stub"
# The attribute that marks a response object shadowguard made as a stub.
_STUB_MARK: Final = "_shadowguard_stub"

R = TypeVar("R")


def mark_stub(response: R) -> R:
    """Mark ``response`` (built by a client integration) as a stub; returns it."""
    setattr(response, _STUB_MARK, True)
    return response


def is_stub(response: Any) -> bool:
    """Is ``response`` a stand-in that shadowguard answered a shadow request with?

    True for the stubs of the httpx, httpx2, requests and urllib3, http_client and
    aiohttp integrations (for requests, also for its ``response.raw``) and for the call
    object of a stubbed gRPC call; False for every real response. Use it to
    keep stubs out of caches that primary traffic reads::

        if not shadowguard.is_stub(response):
            cache[url] = response
    """
    return getattr(response, _STUB_MARK, False) is True
