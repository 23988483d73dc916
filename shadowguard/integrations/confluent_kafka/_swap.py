"""Guarded subclasses swapped in for the client's classes, answering for the classes they replace.

confluent-kafka's ``Producer`` is a C type whose methods cannot be patched, so
``install()`` puts guarded subclasses in its place. ``isinstance``/``issubclass`` against
a swapped-in class answer for the class it replaces, so a producer created before
``install()`` still passes the application's checks. A subclass the application defined
before ``install()`` inherits from the unguarded class: :func:`unguarded_subclasses`
finds those, for ``install()`` to name them.
"""

from __future__ import annotations

import types
from collections.abc import Iterable
from typing import Any

from shadowguard.contract import is_wrapped, mark_wrapped

__all__ = ["SwappedIn", "is_guarded", "unguarded_subclasses"]

_replaced: dict[type, type] = {}


class SwappedIn(type):
    """The metaclass of a class swapped in for ``replaces`` (given in its class statement)."""

    def __new__(
        mcs,
        name: str,
        bases: tuple[type, ...],
        namespace: dict[str, Any],
        replaces: type | None = None,
        **kwargs: Any,
    ) -> SwappedIn:
        cls = super().__new__(mcs, name, bases, namespace, **kwargs)
        if replaces is not None:
            # Only the swapped-in class itself answers for ``replaces``: subclasses of it
            # (an application's, defined after install()) answer for themselves.
            _replaced[cls] = replaces
            mark_wrapped(cls, replaces)
        return cls

    def __instancecheck__(cls, obj: Any) -> bool:
        original = _replaced.get(cls)
        if original is None:
            return super().__instancecheck__(obj)
        return isinstance(obj, original)

    def __subclasscheck__(cls, sub: type) -> bool:
        original = _replaced.get(cls)
        if original is None:
            return super().__subclasscheck__(sub)
        return issubclass(sub, original)

    def __getitem__(cls, params: Any) -> Any:
        # The client's serializing classes are generic (DeserializingConsumer[str, Order]):
        # the class swapped in takes the same parameters and builds its own instances.
        original = _replaced.get(cls)
        if original is None:
            class_getitem = getattr(cls, "__class_getitem__", None)
            if class_getitem is None:
                raise TypeError(f"type {cls.__qualname__!r} is not subscriptable")
            return class_getitem(params)
        original[params]  # type: ignore[index]  # the client's checks: generic, right arity
        return types.GenericAlias(cls, params)


def is_guarded(producer: Any) -> bool:
    """Is ``producer`` an instance of a swapped-in class (or of a subclass of one)?"""
    return is_wrapped(type(producer))


def unguarded_subclasses(roots: Iterable[type]) -> list[type]:
    """Application subclasses of the client classes ``roots`` that are not guarded.

    They were defined before ``install()``, so they inherit from the original classes and
    their instances are never guarded.
    """
    pending = list(roots)
    found: list[type] = []
    seen: set[type] = set()
    while pending:
        sub: type
        for sub in pending.pop().__subclasses__():
            if sub in seen:
                continue
            seen.add(sub)
            pending.append(sub)
            own = sub.__module__.partition(".")[0] in ("confluent_kafka", "shadowguard")
            if not own and not is_wrapped(sub):
                found.append(sub)
    return found
