"""httpx2 (the successor of httpx, same API): the httpx integration's code, for httpx2.

``install()`` guards ``httpx2.Client`` and ``httpx2.AsyncClient`` exactly as
``shadowguard.integrations.httpx`` guards httpx; ``guard(client)`` accepts either.
"""

from __future__ import annotations

from collections.abc import Iterable

from shadowguard._outbound import BLOCK, DEFAULT_STUB, STUB_HEADER, Allow, Default, Reply, Stub
from shadowguard.integrations.httpx import _FLAVORS, guard

__all__ = ["BLOCK", "STUB_HEADER", "Allow", "Reply", "Stub", "guard", "install", "uninstall"]

_httpx2 = _FLAVORS["httpx2"]


def install(
    *,
    allow: Iterable[Allow | str] = (),
    stubs: Iterable[Stub] = (),
    default: Default = DEFAULT_STUB,
    telemetry_exports: bool = True,
) -> None:
    """Guard every ``httpx2.Client`` and ``httpx2.AsyncClient``; options as for httpx."""
    _httpx2.install(allow=allow, stubs=stubs, default=default, telemetry_exports=telemetry_exports)


def uninstall() -> None:
    """Restore ``httpx2`` as it was before :func:`install`."""
    _httpx2.uninstall()
