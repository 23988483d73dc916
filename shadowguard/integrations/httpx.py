"""httpx: in shadow, requests are stubbed unless an allow rule names them.

:func:`install` patches ``httpx.Client._transport_for_url`` (and ``AsyncClient``'s), the
question every request of every client asks, so clients created before ``install()`` are
guarded too; on the primary path the patch calls the original and nothing else. The
shared code (also serving ``shadowguard.integrations.httpx2``) is in ``_httpx_common``.

:func:`guard` guards one client (httpx or httpx2) in place, with or without
``install()``, and returns that same client: it gets an instance attribute that shadows
the class's method, with the install rules or rules of its own.
"""

from __future__ import annotations

from typing import Any

from shadowguard._outbound import BLOCK, STUB_HEADER, Allow, Reply, Stub
from shadowguard.integrations._httpx_common import LIBRARIES, guard

__all__ = ["BLOCK", "STUB_HEADER", "Allow", "Reply", "Stub", "guard", "install", "uninstall"]

_library = LIBRARIES["httpx"]
_patches = _library.patches


def install(**options: Any) -> None:
    """Guard every ``httpx.Client`` and ``httpx.AsyncClient``; idempotent.

    ``allow``: :class:`Allow` rules (or host / URL patterns) for shadow reads that may
    really go out, marked with the shadow marker header. ``stubs``: :class:`Stub` rules
    answering the rest. ``default``: the stub for requests no rule names (200, ``{}``) or
    ``BLOCK`` to raise ``ShadowSideEffectBlocked``. ``telemetry_exports``: let the
    OpenTelemetry SDK's own export requests to the configured OTLP endpoints through
    (default True).
    """
    _patches.install(_library.apply, options)


def uninstall() -> None:
    """Restore ``httpx`` as it was before :func:`install`."""
    _patches.uninstall(after=_library.forget)
