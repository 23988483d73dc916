"""The SQLAlchemy sink's patch registry, shared by the modules of the package.

Shared because patching does not end with ``install()``: a dialect class born after it is
wrapped when first seen (:mod:`._dialect`), and undone by ``uninstall()`` all the same.
Its lock also guards the Sessions' pinned connections (:mod:`._session`).
"""

from __future__ import annotations

from shadowguard.contract import Patches

__all__ = ["PATCHES"]

PATCHES = Patches("sqlalchemy")
