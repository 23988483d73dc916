"""A shadow request one client's guard let out, handed down to the library below it.

requests sends through urllib3 and urllib3 through ``http.client``, and each has a guard.
The guard that lets a shadow request out runs the library below inside
:func:`passing_down`; a guard below that sees the same request (same method, same URL up
to percent-encoding, which the libraries normalize on the way down) sends it unjudged and
unrecorded. So a request is judged once, by the rules of the client the application
called, and counted once. Any other request made below (a redirect that urllib3 follows
itself, a custom adapter's own call) is judged as usual.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from urllib.parse import unquote

from shadowguard._outbound.urls import normalize_url

__all__ = ["judged_above", "passing_down"]

_Key = tuple[str, str, str]
_passed: ContextVar[_Key | None] = ContextVar("shadowguard_http_passed_down", default=None)


def _key(method: str, url: str) -> _Key:
    _, base, query = normalize_url(url)
    return method.upper(), unquote(base), unquote(query)


@contextlib.contextmanager
def passing_down(method: str, url: str) -> Iterator[None]:
    """Run the block (the library below) with ``method url`` judged and let out."""
    token = _passed.set(_key(method, url))
    try:
        yield
    finally:
        _passed.reset(token)


def judged_above(method: str, url: str) -> bool:
    """Did a guard above already let out this very request?"""
    passed = _passed.get()
    return passed is not None and bool(passed[1]) and passed == _key(method, url)
