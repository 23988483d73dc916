"""The asyncio producers guarded: the classes swapped into ``confluent_kafka.aio``, and ``guard()``'s proxy.

``AIOProducer`` collects messages and produces them later as a batch, from a worker
thread outside the request's context, so the guard acts in ``produce()`` itself: in
shadow it returns a future already settled with the synthetic delivery report, or with
the error the batch would have failed with. ``poll()`` and ``flush()`` serve the
primary's reports and run as primary. Absent in confluent-kafka before ``aio``.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from shadowguard.contract import PROCESS, as_primary, scope_now
from shadowguard.integrations.confluent_kafka._outbox import Outbox
from shadowguard.integrations.confluent_kafka._shadow import (
    shadow_aio_produce,
    shadow_aio_serializing_produce,
)
from shadowguard.integrations.confluent_kafka._swap import SwappedIn
from shadowguard.integrations.confluent_kafka._sync import GuardProxy
from shadowguard.integrations.confluent_kafka._transactions import (
    with_transactions,
    wrapped_producer,
)

AIOProducer: Any
AsyncSerializingProducer: Any
try:
    from confluent_kafka.aio import AIOProducer
except ImportError:  # confluent-kafka before the asyncio producers (2.13)
    AIOProducer = None
try:
    from confluent_kafka.aio import AsyncSerializingProducer
except ImportError:  # confluent-kafka 2.13: AIOProducer alone, guarded all the same
    AsyncSerializingProducer = None

__all__ = [
    "AIOProducer",
    "AIOProducerProxy",
    "AsyncSerializingProducer",
    "GuardedAIOProducer",
    "GuardedAsyncSerializingProducer",
    "outbox_of",
]


def outbox_of(producer: Any) -> Outbox:
    """An asyncio producer's outbox: its inner producer's when that one is guarded.

    The inner producer is created from ``confluent_kafka.Producer``, so after
    ``install()`` it is guarded and knows the configuration.
    """
    inner = getattr(producer, "_producer", None)
    outbox = getattr(inner, "_shadow_outbox", None)
    return outbox if isinstance(outbox, Outbox) else Outbox()


def _client_methods(producer: Any) -> Any:
    """Where a guarded class finds the client's own methods: the class after the guard."""
    return super(_AIOGuard, producer)


@with_transactions(_client_methods, asynchronous=True)
class _AIOGuard:
    """The methods a guarded asyncio producer overrides."""

    _shadow_outbox = functools.cached_property(outbox_of)

    async def produce(
        self, topic: str, value: Any = None, key: Any = None, *args: Any, **kwargs: Any
    ) -> asyncio.Future[Any]:
        if scope_now() is None and not PROCESS.shadow:
            return await _client_methods(self).produce(topic, value, key, *args, **kwargs)  # type: ignore[no-any-return]
        return shadow_aio_produce(self._shadow_outbox, topic, value, key, kwargs)

    async def poll(self, *args: Any, **kwargs: Any) -> Any:
        with as_primary():
            return await _client_methods(self).poll(*args, **kwargs)

    async def flush(self, *args: Any, **kwargs: Any) -> Any:
        with as_primary():
            return await _client_methods(self).flush(*args, **kwargs)

    async def purge(self, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return await _client_methods(self).purge(*args, **kwargs)
        return None


if AIOProducer is not None:

    class GuardedAIOProducer(_AIOGuard, AIOProducer, metaclass=SwappedIn, replaces=AIOProducer):  # type: ignore[misc]
        """``confluent_kafka.aio.AIOProducer`` that sends nothing in shadow.

        In shadow, ``produce()`` returns a future already settled with the synthetic
        delivery report (or the error the batch would have failed with).
        """

    if AsyncSerializingProducer is not None:

        class GuardedAsyncSerializingProducer(
            AsyncSerializingProducer,  # type: ignore[misc]
            GuardedAIOProducer,
            replaces=AsyncSerializingProducer,
        ):
            """``confluent_kafka.aio.AsyncSerializingProducer``: serializes, sends nothing in shadow.

            Its own ``produce()`` serializes, then calls the guarded ``AIOProducer.produce``.
            """

    else:  # pragma: no cover - confluent-kafka 2.13
        GuardedAsyncSerializingProducer = None  # type: ignore[assignment,misc]

else:  # pragma: no cover - confluent-kafka without confluent_kafka.aio
    GuardedAIOProducer = None  # type: ignore[assignment,misc]
    GuardedAsyncSerializingProducer = None  # type: ignore[assignment,misc]


@with_transactions(wrapped_producer, asynchronous=True)
class AIOProducerProxy(GuardProxy):
    """``guard(producer)`` for an ``AIOProducer`` or ``AsyncSerializingProducer`` instance."""

    def __init__(self, wrapped: Any, outbox: Outbox) -> None:
        super().__init__(wrapped, outbox)
        self._self_serializing = AsyncSerializingProducer is not None and isinstance(
            wrapped, AsyncSerializingProducer
        )

    async def produce(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        if scope_now() is None and not PROCESS.shadow:
            return await self.__wrapped__.produce(*args, **kwargs)  # type: ignore[no-any-return]
        if self._self_serializing:
            return await shadow_aio_serializing_produce(
                self.__wrapped__, self._self_outbox, args, kwargs
            )
        return shadow_aio_produce(self._self_outbox, *_produce_args(*args, **kwargs))

    async def poll(self, *args: Any, **kwargs: Any) -> Any:
        with as_primary():
            return await self.__wrapped__.poll(*args, **kwargs)

    async def flush(self, *args: Any, **kwargs: Any) -> Any:
        with as_primary():
            return await self.__wrapped__.flush(*args, **kwargs)

    async def purge(self, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return await self.__wrapped__.purge(*args, **kwargs)
        return None

    async def __aenter__(self) -> AIOProducerProxy:
        return self


def _produce_args(
    topic: Any, value: Any = None, key: Any = None, *args: Any, **kwargs: Any
) -> tuple[Any, Any, Any, dict[str, Any]]:
    """``AIOProducer.produce``'s signature: extra positional arguments are ignored, as there."""
    return topic, value, key, kwargs
