"""A registry of every patch and listener handle, so that uninstall really restores."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Patches", "active_patch_sets"]

logger = logging.getLogger("shadowguard")

_MISSING = object()
_active: dict[str, Patches] = {}
_active_lock = threading.Lock()


class Patches:
    """The patches one integration installed; :meth:`restore` undoes them in reverse order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._undo: list[tuple[str, Callable[[], None]]] = []

    def __bool__(self) -> bool:
        return bool(self._undo)

    def __len__(self) -> int:
        return len(self._undo)

    def describe(self) -> list[str]:
        """What is patched, one line each (for ``doctor`` and leak checks)."""
        return [label for label, _ in self._undo]

    def setattr(self, owner: Any, attribute: str, value: Any) -> None:
        """Replace ``owner.attribute`` with ``value`` until :meth:`restore`."""
        original = vars(owner).get(attribute, _MISSING) if hasattr(owner, "__dict__") else _MISSING
        had_own = original is not _MISSING
        setattr(owner, attribute, value)

        def undo() -> None:
            if had_own:
                setattr(owner, attribute, original)
            else:
                # The attribute was inherited or absent: deleting ours exposes the original.
                delattr(owner, attribute)

        label = f"{getattr(owner, '__module__', '')}.{getattr(owner, '__qualname__', getattr(owner, '__name__', repr(owner)))}.{attribute}"
        self._undo.append((label, undo))
        self._activate()

    def add(self, label: str, undo: Callable[[], None]) -> None:
        """Register an ``undo`` callable (for example ``event.remove``) under ``label``."""
        self._undo.append((label, undo))
        self._activate()

    def _activate(self) -> None:
        with _active_lock:
            _active[self.name] = self

    def restore(self) -> None:
        """Undo every patch, newest first. Failures are logged and the rest still undone."""
        errors: list[BaseException] = []
        while self._undo:
            label, undo = self._undo.pop()
            try:
                undo()
            except Exception as exc:
                logger.exception("shadowguard: could not undo %s", label)
                errors.append(exc)
        with _active_lock:
            if _active.get(self.name) is self:
                del _active[self.name]
        if errors:
            raise errors[0]


def active_patch_sets() -> dict[str, list[str]]:
    """Every integration that has patches in place, with what it patched."""
    with _active_lock:
        return {name: patches.describe() for name, patches in _active.items() if patches}
