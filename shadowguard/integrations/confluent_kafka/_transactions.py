"""Transactions in shadow: recorded no-ops, so a shadow request cannot touch the primary's.

A shadow request running the same code as the primary would otherwise fence the
primary's producer (``init_transactions`` with the same ``transactional.id``), or commit
or abort its open transaction on a shared producer. Each call is recorded as
``Kind.KAFKA_TRANSACTION`` with the producer's ``transactional_id``.

An application that initialises lazily (``init_transactions()`` on the first request
that needs it) records "initialised" after a shadow call too, and never calls it again.
The producer therefore owes the primary that init: its first primary transaction call
runs the real ``init_transactions()`` (with the shadow call's arguments) before its own,
so the primary's transactions work and the shadow still never fenced anyone.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from shadowguard._kafka_clients import TRANSACTION_METHODS
from shadowguard.contract import PROCESS, Kind, record, scope_now
from shadowguard.integrations.confluent_kafka._outbox import Outbox

__all__ = [
    "async_transaction",
    "record_transaction",
    "transaction",
    "with_transactions",
    "wrapped_producer",
]

T = TypeVar("T", bound=type)

#: Where a guard finds the producer's own methods: the client class after the guard in the
#: MRO (for a swapped-in class) or the wrapped producer (for a ``guard()`` proxy).
Reach = Callable[[Any], Any]


def wrapped_producer(proxy: Any) -> Any:
    """The :data:`Reach` of a ``guard()`` proxy: the producer it wraps."""
    return proxy.__wrapped__


def transaction(name: str, reach: Reach) -> Callable[..., None]:
    """The method ``name``: the producer's own for a primary caller, recorded in shadow.

    The guard reaches the producer's outbox as ``_shadow_outbox``.
    """

    def method(self: Any, *args: Any, **kwargs: Any) -> None:
        if scope_now() is None and not PROCESS.shadow:
            outbox: Outbox = self._shadow_outbox
            producer = reach(self)
            if name == "init_transactions":
                with outbox.init_lock:
                    producer.init_transactions(*args, **kwargs)
                    _initialised(outbox)
                return None
            if outbox.init_owed is not None:
                with outbox.init_lock:
                    if outbox.init_owed is not None:
                        owed_args, owed_kwargs = outbox.init_owed
                        producer.init_transactions(*owed_args, **owed_kwargs)
                        _initialised(outbox)
            return getattr(producer, name)(*args, **kwargs)  # type: ignore[no-any-return]
        _skip(self._shadow_outbox, name, args, kwargs)
        return None

    method.__name__ = method.__qualname__ = name
    return method


def async_transaction(name: str, reach: Reach) -> Callable[..., Coroutine[Any, Any, Any]]:
    """:func:`transaction` for the asyncio producers."""

    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            outbox: Outbox = self._shadow_outbox
            producer = reach(self)
            owed = outbox.init_owed
            # An inner guarded producer sharing this outbox pays the debt itself, under
            # its lock, in the worker thread that runs the call.
            inner_pays = getattr(getattr(self, "_producer", None), "_shadow_outbox", None) is outbox
            if name != "init_transactions" and owed is not None and not inner_pays:
                await producer.init_transactions(*owed[0], **owed[1])
                _initialised(outbox)
            result = await getattr(producer, name)(*args, **kwargs)
            if name == "init_transactions":
                _initialised(outbox)
            return result
        _skip(self._shadow_outbox, name, args, kwargs)
        return None

    method.__name__ = method.__qualname__ = name
    return method


def with_transactions(reach: Reach, *, asynchronous: bool = False) -> Callable[[T], T]:
    """Class decorator: every transaction method, the producer's own or a recorded no-op."""
    make = async_transaction if asynchronous else transaction

    def decorate(cls: T) -> T:
        for name in TRANSACTION_METHODS:
            setattr(cls, name, make(name, reach))
        return cls

    return decorate


def _initialised(outbox: Outbox) -> None:
    outbox.initialised = True
    outbox.init_owed = None


def _skip(outbox: Outbox, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """A transaction call in shadow: recorded; a first ``init_transactions`` is owed."""
    if name == "init_transactions" and not outbox.initialised and outbox.init_owed is None:
        outbox.init_owed = (args, dict(kwargs))
    record_transaction(outbox, name)


def record_transaction(outbox: Outbox, operation: str) -> None:
    """Record a transaction call that did not reach the broker."""
    transactional_id = outbox.transactional_id
    record(
        Kind.KAFKA_TRANSACTION,
        str(transactional_id or "<transaction>"),
        operation,
        {"transactional_id": transactional_id},
    )
