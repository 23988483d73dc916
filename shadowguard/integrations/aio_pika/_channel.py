"""The hooks on ``aiormq.Channel``, the channel under every aio-pika channel.

aio-pika's ``Exchange.publish`` (the default exchange too), ``Queue.consume``, ``Queue.get``,
``Queue.iterator``, ``IncomingMessage.ack``/``nack``/``reject``, ``Queue.purge``,
``Queue.delete`` and ``Exchange.delete`` all end in these methods. Each hook's first line is
the pass-through; in shadow:

- ``basic_publish`` builds and marshals the frames exactly as aiormq would, then drops them;
  with publisher confirms on it returns a ``Basic.Ack`` (``delivery_tag`` 0: no broker tag
  was spent), so ``await exchange.publish(...)`` succeeds.
- ``basic_consume`` and ``basic_get`` refuse a queue that is not the shadow's own.
- ``basic_ack``, ``basic_nack`` and ``basic_reject`` reach the broker only on a channel
  whose consumers are all the shadow's own (:class:`~shadowguard._amqp.ChannelLedger`).
- ``queue_purge``, ``queue_delete`` and ``exchange_delete`` of what is not the shadow's own
  send a passive declare instead and answer ``PurgeOk``/``DeleteOk`` from it; so do
  ``queue_bind``, ``queue_unbind``, ``exchange_bind`` and ``exchange_unbind``.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable
from typing import Any

from aiormq.abc import ChannelFrame
from aiormq.exceptions import ChannelInvalidStateError
from pamqp import commands as spec
from pamqp.header import ContentHeader

from shadowguard import _amqp
from shadowguard._amqp import ChannelHooks, Hook, MirrorRule
from shadowguard.contract import PROCESS, scope_now

__all__ = ["HOOKS", "LEDGER", "target_of"]

CLIENT = "aiormq"
LEDGER = _amqp.ChannelLedger()
HOOKS = ChannelHooks()
_ROUTING_KEY_MAX = 255


def target_of(channel: Any) -> str:
    """``amqp://host:port/vhost`` of a channel's connection, without credentials."""
    url = getattr(getattr(channel, "connection", None), "url", None)
    if url is None:
        return "amqp://?"
    vhost = (url.path or "/").lstrip("/")
    return f"{url.scheme}://{url.host}:{url.port}/{vhost}"


def _raise_if_closed(channel: Any) -> None:
    if channel.is_closed:
        raise ChannelInvalidStateError(f"{channel!r} closed")


def _check_publish(
    channel: Any,
    body: Any,
    exchange: str,
    routing_key: str,
    properties: Any,
    mandatory: bool,
    immediate: bool,
) -> int:
    """Build and marshal the frames as ``basic_publish`` would, raising what it raises."""
    if len(routing_key) > _ROUTING_KEY_MAX:
        raise ValueError("Routing key too long (max 255 bytes)")
    publish = spec.Basic.Publish(
        exchange=exchange, routing_key=routing_key, mandatory=mandatory, immediate=immediate
    )
    header = ContentHeader(
        properties=properties or spec.Basic.Properties(delivery_mode=1), body_size=len(body)
    )
    frames = [publish, header, *channel._split_body(body)]
    ChannelFrame.marshall(frames=frames, channel_number=channel.number)
    _raise_if_closed(channel)
    return len(body)


@HOOKS.hook("basic_publish")
def _publish(original: Callable[..., Any], rule: MirrorRule) -> Callable[..., Any]:
    async def basic_publish(
        self: Any,
        body: bytes,
        *,
        exchange: str = "",
        routing_key: str = "",
        properties: Any = None,
        mandatory: bool = False,
        immediate: bool = False,
        **options: Any,
    ) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return await original(
                self,
                body,
                exchange=exchange,
                routing_key=routing_key,
                properties=properties,
                mandatory=mandatory,
                immediate=immediate,
                **options,
            )
        size = _check_publish(self, body, exchange, routing_key, properties, mandatory, immediate)
        confirm = bool(self.publisher_confirms)
        _amqp.record_publish(
            CLIENT,
            target_of(self),
            exchange,
            routing_key,
            size,
            mandatory=mandatory,
            confirm=confirm,
        )
        return spec.Basic.Ack(delivery_tag=0) if confirm else None

    return basic_publish


@HOOKS.hook("basic_consume")
def _consume(original: Callable[..., Any], rule: MirrorRule) -> Callable[..., Any]:
    async def basic_consume(
        self: Any, queue: str, consumer_callback: Any, *args: Any, **kwargs: Any
    ) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return await original(self, queue, consumer_callback, *args, **kwargs)
        if not rule.owns(queue):
            raise _amqp.consume_refusal(
                "aio_pika", rule, CLIENT, target_of(self), "basic_consume", queue
            )
        # The tag is known before the broker's ConsumeOk: a delivery (and its ack) may be
        # handled before this coroutine resumes.
        tag = kwargs.get("consumer_tag") or f"ctag{self.number}.{uuid.uuid4().hex}"
        kwargs["consumer_tag"] = tag
        LEDGER.consumed(self, tag)
        # aiormq runs the callback in its reader's context, not this one: without the
        # wrapper a consumer started in a shadow scope would handle its messages as primary.
        handle = _amqp.in_shadow_async(consumer_callback, _amqp.consumer_reason(queue))
        return await original(self, queue, handle, *args, **kwargs)

    return basic_consume


@HOOKS.hook("basic_get")
def _get(original: Callable[..., Any], rule: MirrorRule) -> Callable[..., Any]:
    async def basic_get(self: Any, queue: str = "", *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return await original(self, queue, *args, **kwargs)
        if not rule.owns(queue):
            raise _amqp.consume_refusal(
                "aio_pika", rule, CLIENT, target_of(self), "basic_get", queue
            )
        LEDGER.got(self)
        return await original(self, queue, *args, **kwargs)

    return basic_get


def _acks_run(channel: Any) -> bool:
    return LEDGER.acks_run(channel, channel.consumers.keys())


def _ack_instead(channel: Any, operation: str, delivery_tag: Any, **flags: Any) -> None:
    """Record the acknowledgement ``operation`` in place of sending it (on an open channel)."""
    _raise_if_closed(channel)
    _amqp.record_ack(CLIENT, target_of(channel), operation, delivery_tag, **flags)


@HOOKS.hook("basic_ack")
def _ack(original: Callable[..., Any], rule: MirrorRule) -> Callable[..., Any]:
    async def basic_ack(
        self: Any, delivery_tag: int, multiple: bool = False, **options: Any
    ) -> Any:
        if (scope_now() is None and not PROCESS.shadow) or _acks_run(self):
            return await original(self, delivery_tag, multiple, **options)
        _ack_instead(self, "basic_ack", delivery_tag, multiple=multiple)
        return None

    return basic_ack


@HOOKS.hook("basic_nack")
def _nack(original: Callable[..., Any], rule: MirrorRule) -> Callable[..., Any]:
    async def basic_nack(
        self: Any, delivery_tag: int, multiple: bool = False, requeue: bool = True, **options: Any
    ) -> Any:
        if (scope_now() is None and not PROCESS.shadow) or _acks_run(self):
            return await original(self, delivery_tag, multiple, requeue, **options)
        _ack_instead(self, "basic_nack", delivery_tag, multiple=multiple, requeue=requeue)
        return None

    return basic_nack


@HOOKS.hook("basic_reject")
def _reject(original: Callable[..., Any], rule: MirrorRule) -> Callable[..., Any]:
    async def basic_reject(
        self: Any, delivery_tag: int, *, requeue: bool = True, **options: Any
    ) -> Any:
        if (scope_now() is None and not PROCESS.shadow) or _acks_run(self):
            return await original(self, delivery_tag, requeue=requeue, **options)
        _ack_instead(self, "basic_reject", delivery_tag, requeue=requeue)
        return None

    return basic_reject


async def _declared_instead(
    channel: Any,
    operation: str,
    key: str,
    name: Any,
    nowait: Any,
    timeout: Any,
) -> Any:
    """Record ``operation`` on the queue or exchange ``name`` (``key``) and send a passive
    declare of it in its place; its reply, turned into the one the caller awaits (``None``
    for ``nowait``)."""
    _raise_if_closed(channel)
    _amqp.record_admin(CLIENT, target_of(channel), operation, key, name)
    if nowait:
        return None
    if key == "queue":
        declared = await channel.queue_declare(name, passive=True, timeout=timeout)
    else:
        declared = await channel.exchange_declare(name, passive=True, timeout=timeout)
    return _amqp.admin_reply(spec, operation, declared)


@HOOKS.hook("queue_purge")
def _purge(original: Callable[..., Any], rule: MirrorRule) -> Callable[..., Any]:
    async def queue_purge(
        self: Any, queue: str = "", nowait: bool = False, timeout: Any = None
    ) -> Any:
        if (scope_now() is None and not PROCESS.shadow) or rule.owns(queue):
            return await original(self, queue, nowait, timeout)
        return await _declared_instead(self, "queue_purge", "queue", queue, nowait, timeout)

    return queue_purge


@HOOKS.hook("queue_delete")
def _queue_delete(original: Callable[..., Any], rule: MirrorRule) -> Callable[..., Any]:
    async def queue_delete(
        self: Any,
        queue: str = "",
        if_unused: bool = False,
        if_empty: bool = False,
        nowait: bool = False,
        timeout: Any = None,
    ) -> Any:
        if (scope_now() is None and not PROCESS.shadow) or rule.owns(queue):
            return await original(self, queue, if_unused, if_empty, nowait, timeout)
        return await _declared_instead(self, "queue_delete", "queue", queue, nowait, timeout)

    return queue_delete


@HOOKS.hook("exchange_delete")
def _exchange_delete(original: Callable[..., Any], rule: MirrorRule) -> Callable[..., Any]:
    async def exchange_delete(self: Any, exchange: str = "", **options: Any) -> Any:
        if (scope_now() is None and not PROCESS.shadow) or rule.owns(exchange):
            return await original(self, exchange, **options)
        nowait, timeout = options.get("nowait"), options.get("timeout")
        return await _declared_instead(
            self, "exchange_delete", "exchange", exchange, nowait, timeout
        )

    return exchange_delete


def _binding(name: str) -> Hook:
    """A (un)binding of what is not the shadow's own would change which messages reach the
    primary's queues: a passive declare is sent instead, and answered as the binding."""

    def factory(original: Callable[..., Any], rule: MirrorRule) -> Callable[..., Any]:
        signature = inspect.signature(original)

        async def binding(self: Any, *args: Any, **kwargs: Any) -> Any:
            if scope_now() is None and not PROCESS.shadow:
                return await original(self, *args, **kwargs)
            call = _amqp.binding_of(signature, name, (self, *args), kwargs)
            if rule.owns(call.target):
                return await original(self, *args, **kwargs)
            nowait, timeout = call.arguments.get("nowait"), call.arguments.get("timeout")
            return await _declared_instead(self, name, call.key, call.target, nowait, timeout)

        return binding

    return factory


HOOKS.update({name: _binding(name) for name in _amqp.BINDINGS})
