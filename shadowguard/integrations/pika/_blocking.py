"""The hooks on ``pika.BlockingChannel``: a shadow publish is confirmed at once; a consumer
started in shadow handles its messages as shadow.

A blocking channel in confirm mode waits in ``basic_publish`` for the broker's ``Basic.Ack``;
in shadow nothing is sent, so the hook frames the message (raising what pika would raise)
and returns as a confirmed publish returns. It never calls the channel's ``_impl``, whose own
hook would refuse a channel in confirm mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shadowguard._amqp import consumer_reason, in_shadow
from shadowguard.contract import PROCESS, mark_wrapped, scope_now
from shadowguard.integrations.pika._channel import basic_publish_hook

__all__ = ["consume_hook", "publish_hook"]


def publish_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    """``BlockingChannel.basic_publish``: in shadow, framed on the channel's ``_impl`` and
    answered as a confirmed publish."""
    basic_publish = basic_publish_hook(
        original,
        lambda blocking: blocking._impl,
        lambda blocking, _exchange, _routing_key: bool(blocking._delivery_confirmation),
    )
    basic_publish.__doc__ = original.__doc__
    return mark_wrapped(basic_publish, original)


def consume_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    """``BlockingChannel.basic_consume``: a consumer started in shadow handles its messages as
    shadow, even when ``start_consuming()`` runs outside the scope (the channel's ``_impl``
    hook refuses queues that are not the shadow's own)."""

    def basic_consume(
        self: Any, queue: str, on_message_callback: Any, *args: Any, **kwargs: Any
    ) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, queue, on_message_callback, *args, **kwargs)
        if callable(on_message_callback):  # else pika raises its own error
            on_message_callback = in_shadow(on_message_callback, consumer_reason(queue))
        return original(self, queue, on_message_callback, *args, **kwargs)

    basic_consume.__doc__ = original.__doc__
    return mark_wrapped(basic_consume, original)
