"""The Django sink's patch registry, shared by its modules."""

from __future__ import annotations

from shadowguard.contract import Patches

__all__ = ["PATCHES"]

PATCHES = Patches("django")
