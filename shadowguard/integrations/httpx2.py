"""httpx2 (the successor of httpx, same API): guarded exactly as httpx is.

:func:`install` patches ``httpx2.Client`` and ``httpx2.AsyncClient`` as
``shadowguard.integrations.httpx`` patches httpx (the code is shared in
``_httpx_common``). :func:`guard` is the same function as ``httpx.guard``: it guards one
client of either library in place and returns that same client.
"""

from __future__ import annotations

from typing import Any

from shadowguard._outbound import BLOCK, STUB_HEADER, Allow, Reply, Stub
from shadowguard.integrations._httpx_common import LIBRARIES, guard

__all__ = ["BLOCK", "STUB_HEADER", "Allow", "Reply", "Stub", "guard", "install", "uninstall"]

_library = LIBRARIES["httpx2"]
_patches = _library.patches


def install(**options: Any) -> None:
    """Guard every ``httpx2.Client`` and ``httpx2.AsyncClient``; options as for httpx."""
    _patches.install(_library.apply, options)


def uninstall() -> None:
    """Restore ``httpx2`` as it was before :func:`install`."""
    _patches.uninstall(after=_library.forget)
