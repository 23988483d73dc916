"""The backstop: a producer the guard does not wrap refuses in shadow, loudly.

``install()`` swaps guarded classes in, but every way around the swap still builds the
client's own producer: ``confluent_kafka.cimpl.Producer``, a class imported before
``install()`` (``from confluent_kafka import Producer``, ``SerializingProducer``,
``AIOProducer``), a subclass defined before it, a producer created before it. Under
``install()`` their calls that send, purge or touch a transaction raise
``ShadowSideEffectBlocked`` in shadow (recorded, with ``guard(producer)`` as the way out),
and their ``poll()``/``flush()`` serve the primary's delivery reports as primary.

The client's ``Producer`` is a C type: its attributes cannot be set, so the backstop writes
its method table directly and tells CPython the type changed (``PyType_Modified``), the way
the C API itself does; ``uninstall()`` puts the client's methods back. Guarded producers
never reach the backstop in shadow: they call the client's methods taken at import. Each
replacement is marked with the client's method it replaces (``unwrapped(method)``), which
the Kafka capture sink, shadowguard's own channel, calls instead.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from confluent_kafka import cimpl

from shadowguard._kafka_clients import TRANSACTION_METHODS
from shadowguard.contract import (
    PROCESS,
    Kind,
    Patches,
    ShadowSideEffectBlocked,
    as_primary,
    mark_wrapped,
    refuse,
    scope_now,
)

__all__ = ["REFUSED", "guard_class_in_place", "guard_client_type", "set_type_method"]

#: The calls an unguarded producer refuses in shadow.
REFUSED = ("produce", "produce_batch", "purge", *TRANSACTION_METHODS)
#: The calls that serve delivery reports: run as primary from a shadow request.
_SERVING = ("poll", "flush")
#: The client's own type, taken at import: ``install()`` swaps ``cimpl.Producer`` itself.
_CLIENT: type = cimpl.Producer
_REMEDY = (
    "wrap it with shadowguard.integrations.confluent_kafka.guard(producer, config=...), "
    "or create it through confluent_kafka.Producer (or SerializingProducer, "
    "confluent_kafka.aio.AIOProducer) after shadowguard.install(), from a class not "
    "imported or subclassed before it"
)


def _refusal(producer: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Exception:
    kind = Kind.KAFKA_TRANSACTION if name in TRANSACTION_METHODS else Kind.KAFKA_PRODUCE
    topic = args[0] if args else kwargs.get("topic")
    target = topic if kind == Kind.KAFKA_PRODUCE and isinstance(topic, str) else "<producer>"
    return refuse(
        kind,
        target,
        name,
        f"{type(producer).__name__}.{name}() in shadow on a producer shadowguard does not "
        "guard (created before install(), or from a class imported or subclassed before it)",
        remedy=_REMEDY,
        detail={"producer_class": f"{type(producer).__module__}.{type(producer).__qualname__}"},
    )


def _refusing(name: str, client: Callable[..., Any]) -> Callable[..., Any]:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return client(self, *args, **kwargs)
        raise _refusal(self, name, args, kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = client.__doc__
    return method


def _serving(name: str, client: Callable[..., Any]) -> Callable[..., Any]:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return client(self, *args, **kwargs)
        with as_primary():
            return client(self, *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = client.__doc__
    return method


def _async_refusing(
    name: str, client: Callable[..., Coroutine[Any, Any, Any]]
) -> Callable[..., Coroutine[Any, Any, Any]]:
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return await client(self, *args, **kwargs)
        raise _refusal(self, name, args, kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = client.__doc__
    return method


def _type_dict(cls: type, name: str) -> dict[str, Any]:
    """The dict behind ``cls.__dict__`` (a read-only proxy for a C type), which holds ``name``."""
    (namespace,) = gc.get_referents(cls.__dict__)
    if not isinstance(namespace, dict) or namespace.get(name) is not cls.__dict__[name]:
        raise RuntimeError(f"cannot reach the method table of {cls.__qualname__}")
    return namespace


def set_type_method(cls: type, name: str, method: Any) -> None:
    """Put ``method`` in the C type ``cls`` as ``name``, an attribute it already has."""
    _type_dict(cls, name)[name] = method
    # Every type's method cache (and its subclasses') keyed on cls is invalidated.
    ctypes.pythonapi.PyType_Modified(ctypes.py_object(cls))


def guard_client_type(patches: Patches) -> None:
    """Make the client's ``cimpl.Producer`` refuse in shadow, for every instance and subclass."""
    if sys.implementation.name != "cpython":  # pragma: no cover - CPython only
        raise ShadowSideEffectBlocked(
            "the confluent_kafka guard needs CPython to guard producers it does not wrap",
            remedy="run on CPython, or do not install the confluent_kafka integration",
        )
    client = _CLIENT
    for name in REFUSED + _SERVING:
        original = client.__dict__.get(name)
        if original is None:  # a method this client version does not have
            continue
        make = _serving if name in _SERVING else _refusing
        set_type_method(client, name, mark_wrapped(make(name, original), original))
        patches.add(
            f"confluent_kafka.cimpl.Producer.{name}",
            functools.partial(set_type_method, client, name, original),
        )


def guard_class_in_place(patches: Patches, cls: type) -> None:
    """The same for a Python class with async methods (``confluent_kafka.aio.AIOProducer``).

    Its batches reach the client later from a worker thread, outside the request's
    context, where the client type's backstop cannot tell shadow from primary.
    """
    for name in REFUSED:
        original = cls.__dict__.get(name)
        if original is not None:
            patches.setattr(cls, name, _async_refusing(name, original))
