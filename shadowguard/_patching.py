"""The patch registry: each integration's patches, install state, lock and options.

Every sink installs through :meth:`Patches.install`, which validates the options with one
error text, holds the sink's lock, skips a second install and undoes a half-done one; and
marks each wrapper with :data:`WRAPPED`, so "is this already ours?" has one answer.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

__all__ = ["WRAPPED", "Patches", "active_patch_sets", "is_wrapped", "mark_wrapped", "unwrapped"]

logger = logging.getLogger("shadowguard")

#: The attribute that marks a shadowguard wrapper; its value is what it wraps.
WRAPPED = "__shadowguard_wrapped__"

W = TypeVar("W")
_MISSING = object()
_active: dict[str, Patches] = {}
_active_lock = threading.Lock()


def mark_wrapped(wrapper: W, original: Any) -> W:
    """Mark ``wrapper`` as shadowguard's wrapper of ``original``; returns ``wrapper``."""
    setattr(wrapper, WRAPPED, original)
    return wrapper


def is_wrapped(obj: Any) -> bool:
    """Is ``obj`` a wrapper that shadowguard made?"""
    return getattr(obj, WRAPPED, _MISSING) is not _MISSING


def unwrapped(obj: Any) -> Any:
    """What ``obj`` wraps if shadowguard made it, else ``obj`` itself."""
    return getattr(obj, WRAPPED, obj)


def _accepted_options(apply: Callable[..., None]) -> tuple[str, ...]:
    return tuple(
        p.name
        for p in inspect.signature(apply).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    )


class Patches:
    """The patches one integration installed; :meth:`restore` undoes them in reverse order."""

    def __init__(self, name: str) -> None:
        self.name = name
        #: Held while installing or uninstalling, and by sinks for their own install state.
        self.lock = threading.RLock()
        self._undo: list[tuple[str, Callable[[], None]]] = []

    def __bool__(self) -> bool:
        return bool(self._undo)

    def __len__(self) -> int:
        return len(self._undo)

    @property
    def installed(self) -> bool:
        """Is anything of this integration patched?"""
        return bool(self._undo)

    def check_options(self, apply: Callable[..., None], options: Mapping[str, Any]) -> None:
        """Raise TypeError naming the integration and the accepted options for an unknown one."""
        accepted = _accepted_options(apply)
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise TypeError(
                f"the {self.name} integration got unknown option(s) {', '.join(unknown)}: "
                f"accepted options are {', '.join(accepted) if accepted else 'none (it takes no options)'}"
            )

    def install(self, apply: Callable[..., None], options: Mapping[str, Any]) -> bool:
        """Run ``apply(**options)`` once; False if already installed.

        ``apply`` patches through :meth:`setattr` and :meth:`add`; its keyword-only
        parameters are the accepted options. If it raises, whatever it patched is undone.
        """
        self.check_options(apply, options)
        with self.lock:
            if self._undo:
                return False
            try:
                apply(**options)
            except BaseException:
                self.restore()
                raise
            return True

    def uninstall(self, after: Callable[[], None] | None = None) -> None:
        """Undo every patch under the lock, then run ``after`` (forget sink state)."""
        with self.lock:
            try:
                self.restore()
            finally:
                if after is not None:
                    after()

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
