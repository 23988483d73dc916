"""The hooks on ``pika.channel.Channel``, the channel every pika connection type uses.

``BlockingChannel`` calls these methods on its ``_impl``; ``SelectConnection``,
``AsyncioConnection`` and the others hand them to the application directly. Each hook's
first line is the pass-through; in shadow:

- ``basic_publish`` encodes and frames the message exactly as pika would, then drops it.
  A channel in confirm mode (``confirm_delivery``) refuses: its application counts
  delivery tags, and a publish the broker never sees would shift every later one.
- ``basic_consume`` and ``basic_get`` refuse a queue that is not the shadow's own.
- ``basic_ack``, ``basic_nack`` and ``basic_reject`` reach the broker only on a channel
  whose consumers are all the shadow's own (:class:`~shadowguard._amqp.ChannelLedger`).
- ``queue_purge``, ``queue_delete`` and ``exchange_delete`` of what is not the shadow's
  own send a passive declare instead (a missing queue fails as it would have) and answer
  its ``message_count`` as ``PurgeOk``/``DeleteOk``; so do ``queue_bind``,
  ``queue_unbind``, ``exchange_bind`` and ``exchange_unbind`` (answered ``BindOk``/``UnbindOk``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from pika import exceptions, frame, spec
from pika.compat import as_bytes

from shadowguard import _amqp
from shadowguard._amqp import ChannelHooks, Hook, MirrorRule
from shadowguard.contract import PROCESS, Kind, refuse, scope_now

__all__ = ["HOOKS", "LEDGER", "basic_publish_hook", "check_publish", "target_of"]

CLIENT = "pika"
LEDGER = _amqp.ChannelLedger()
HOOKS = ChannelHooks()
_CONFIRM_REMEDY = (
    "A publish in shadow never reaches the broker, so the delivery tags of the channel's "
    "later confirms would no longer match what the application counted. Publish through a "
    "pika.BlockingConnection channel (its confirms are answered in shadow) or aio-pika, or "
    "keep the shadow's publishes on a channel without confirm_delivery()"
)


def target_of(channel: Any) -> str:
    """``amqp://host:port/vhost`` of a channel's connection, without credentials."""
    params = getattr(getattr(channel, "connection", None), "params", None)
    host = getattr(params, "host", "?")
    port = getattr(params, "port", "?")
    vhost = getattr(params, "virtual_host", "/")
    return f"amqp://{host}:{port}/{'' if vhost == '/' else vhost}"


def check_publish(
    channel: Any,
    exchange: str,
    routing_key: str,
    body: Any,
    properties: spec.BasicProperties | None,
    mandatory: bool,
) -> int:
    """Encode and frame the message as ``basic_publish`` would, raising what it raises; the
    body's size. Nothing is written."""
    channel._raise_if_not_open()
    body = as_bytes(body)
    number = channel.channel_number
    method = spec.Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=mandatory)
    frame.Method(number, method).marshal()
    frame.Header(number, len(body), properties or spec.BasicProperties()).marshal()
    if body:
        frame.Body(number, body[: channel.connection._body_max_length]).marshal()
    if channel.connection.is_closed:
        raise exceptions.ConnectionWrongStateError(
            "Attempted to send a frame on closed connection."
        )
    return len(body)


def basic_publish_hook(
    original: Callable[..., Any],
    channel_of: Callable[[Any], Any],
    confirm: Callable[[Any, str, str], bool],
) -> Callable[..., Any]:
    """``basic_publish`` (of a ``Channel`` or a ``BlockingChannel``): the channel's own for a
    primary caller. In shadow the message is framed on ``channel_of(self)`` (raising what pika
    raises) and recorded, with ``confirm(self, exchange, routing_key)``: will the caller see a
    confirm (raising if the shadow cannot answer as the broker would)? Nothing is sent."""

    def basic_publish(
        self: Any,
        exchange: str,
        routing_key: str,
        body: Any,
        properties: spec.BasicProperties | None = None,
        mandatory: bool = False,
    ) -> None:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, exchange, routing_key, body, properties, mandatory)  # type: ignore[no-any-return]
        channel = channel_of(self)
        size = check_publish(channel, exchange, routing_key, body, properties, mandatory)
        confirmed = confirm(self, exchange, routing_key)
        _amqp.record_publish(
            CLIENT,
            target_of(channel),
            exchange,
            routing_key,
            size,
            mandatory=mandatory,
            confirm=confirmed,
        )
        return None

    return basic_publish


def _no_confirm_mode(channel: Any, exchange: str, routing_key: str) -> bool:
    if channel.callbacks.pending(channel.channel_number, spec.Basic.Ack):
        raise refuse(
            Kind.AMQP_PUBLISH,
            target_of(channel),
            "basic_publish",
            f"basic_publish to exchange {exchange!r} on a pika channel in confirm mode",
            remedy=_CONFIRM_REMEDY,
            detail={"exchange": exchange, "routing_key": routing_key, "client": CLIENT},
        )
    return False


@HOOKS.hook("basic_publish")
def _publish(original: Callable[..., Any], rule: MirrorRule) -> Callable[..., Any]:
    return basic_publish_hook(original, lambda channel: channel, _no_confirm_mode)


@HOOKS.hook("basic_consume")
def _consume(original: Callable[..., Any], rule: MirrorRule) -> Callable[..., Any]:
    def basic_consume(
        self: Any, queue: str, on_message_callback: Any, *args: Any, **kwargs: Any
    ) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, queue, on_message_callback, *args, **kwargs)
        if not rule.owns(queue):
            raise _amqp.consume_refusal(
                "pika", rule, CLIENT, target_of(self), "basic_consume", queue
            )
        if callable(on_message_callback):  # else pika raises its own error
            on_message_callback = _amqp.in_shadow(on_message_callback, _amqp.consumer_reason(queue))
        tag = original(self, queue, on_message_callback, *args, **kwargs)
        LEDGER.consumed(self, tag)
        return tag

    return basic_consume


@HOOKS.hook("basic_get")
def _get(original: Callable[..., Any], rule: MirrorRule) -> Callable[..., Any]:
    def basic_get(self: Any, queue: str, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, queue, *args, **kwargs)
        if not rule.owns(queue):
            raise _amqp.consume_refusal("pika", rule, CLIENT, target_of(self), "basic_get", queue)
        LEDGER.got(self)
        return original(self, queue, *args, **kwargs)

    return basic_get


def _acks_run(channel: Any) -> bool:
    return LEDGER.acks_run(channel, channel.consumer_tags)


def _ack_instead(channel: Any, operation: str, delivery_tag: Any, **flags: Any) -> None:
    """Record the acknowledgement ``operation`` in place of sending it (on an open channel)."""
    channel._raise_if_not_open()
    _amqp.record_ack(CLIENT, target_of(channel), operation, delivery_tag, **flags)


@HOOKS.hook("basic_ack")
def _ack(original: Callable[..., Any], rule: MirrorRule) -> Callable[..., Any]:
    def basic_ack(self: Any, delivery_tag: int = 0, multiple: bool = False) -> None:
        if (scope_now() is None and not PROCESS.shadow) or _acks_run(self):
            return original(self, delivery_tag, multiple)  # type: ignore[no-any-return]
        _ack_instead(self, "basic_ack", delivery_tag, multiple=multiple)
        return None

    return basic_ack


@HOOKS.hook("basic_nack")
def _nack(original: Callable[..., Any], rule: MirrorRule) -> Callable[..., Any]:
    def basic_nack(
        self: Any, delivery_tag: int = 0, multiple: bool = False, requeue: bool = True
    ) -> None:
        if (scope_now() is None and not PROCESS.shadow) or _acks_run(self):
            return original(self, delivery_tag, multiple, requeue)  # type: ignore[no-any-return]
        _ack_instead(self, "basic_nack", delivery_tag, multiple=multiple, requeue=requeue)
        return None

    return basic_nack


@HOOKS.hook("basic_reject")
def _reject(original: Callable[..., Any], rule: MirrorRule) -> Callable[..., Any]:
    def basic_reject(self: Any, delivery_tag: int = 0, requeue: bool = True) -> None:
        if (scope_now() is None and not PROCESS.shadow) or _acks_run(self):
            return original(self, delivery_tag, requeue)  # type: ignore[no-any-return]
        self._raise_if_not_open()
        if not isinstance(delivery_tag, int):
            raise TypeError("delivery_tag must be an integer")
        _ack_instead(self, "basic_reject", delivery_tag, requeue=requeue)
        return None

    return basic_reject


def _declare_instead(
    channel: Any,
    operation: str,
    key: str,
    name: Any,
    callback: Callable[..., Any] | None,
) -> None:
    """Record ``operation`` on the queue or exchange ``name`` (``key``) and send a passive
    declare of it in its place; the declare's reply, turned into the one the caller waits for,
    goes to ``callback``."""
    channel._raise_if_not_open()
    _amqp.record_admin(CLIENT, target_of(channel), operation, key, name)
    if key == "queue":
        declare: Any = spec.Queue.Declare(queue=name, passive=True)
        ok: Any = spec.Queue.DeclareOk
    else:
        # The type as text: pika before 1.3.1 cannot encode its own ExchangeType default.
        declare = spec.Exchange.Declare(exchange=name, type="direct", passive=True)
        ok = spec.Exchange.DeclareOk
    if callback is None:
        return  # nowait: the caller expects no reply
    if not callable(callback):
        raise TypeError("callback should be None or a callable")

    def answered(method_frame: Any) -> None:
        reply = _amqp.admin_reply(spec, operation, method_frame.method)
        callback(frame.Method(method_frame.channel_number, reply))

    channel._rpc(declare, answered, [ok])


@HOOKS.hook("queue_purge")
def _purge(original: Callable[..., Any], rule: MirrorRule) -> Callable[..., Any]:
    def queue_purge(self: Any, queue: str, callback: Callable[..., Any] | None = None) -> None:
        if (scope_now() is None and not PROCESS.shadow) or rule.owns(queue):
            return original(self, queue, callback)  # type: ignore[no-any-return]
        _declare_instead(self, "queue_purge", "queue", queue, callback)
        return None

    return queue_purge


@HOOKS.hook("queue_delete")
def _queue_delete(original: Callable[..., Any], rule: MirrorRule) -> Callable[..., Any]:
    def queue_delete(
        self: Any,
        queue: str,
        if_unused: bool = False,
        if_empty: bool = False,
        callback: Callable[..., Any] | None = None,
    ) -> None:
        if (scope_now() is None and not PROCESS.shadow) or rule.owns(queue):
            return original(self, queue, if_unused, if_empty, callback)  # type: ignore[no-any-return]
        _declare_instead(self, "queue_delete", "queue", queue, callback)
        return None

    return queue_delete


@HOOKS.hook("exchange_delete")
def _exchange_delete(original: Callable[..., Any], rule: MirrorRule) -> Callable[..., Any]:
    def exchange_delete(
        self: Any,
        exchange: str | None = None,
        if_unused: bool = False,
        callback: Callable[..., Any] | None = None,
    ) -> None:
        if (scope_now() is None and not PROCESS.shadow) or rule.owns(exchange):
            return original(self, exchange, if_unused, callback)  # type: ignore[no-any-return]
        _declare_instead(self, "exchange_delete", "exchange", exchange, callback)
        return None

    return exchange_delete


def _binding(name: str) -> Hook:
    """A (un)binding of what is not the shadow's own would change which messages reach the
    primary's queues: a passive declare of the queue (or destination exchange) is sent
    instead, and its reply answered as the binding's."""

    def factory(original: Callable[..., Any], rule: MirrorRule) -> Callable[..., Any]:
        signature = inspect.signature(original)

        def binding(self: Any, *args: Any, **kwargs: Any) -> Any:
            if scope_now() is None and not PROCESS.shadow:
                return original(self, *args, **kwargs)
            call = _amqp.binding_of(signature, name, (self, *args), kwargs)
            if rule.owns(call.target):
                return original(self, *args, **kwargs)
            callback = call.arguments["callback"]
            _declare_instead(self, name, call.key, call.target, callback)
            return None

        return binding

    return factory


HOOKS.update({name: _binding(name) for name in _amqp.BINDINGS})
