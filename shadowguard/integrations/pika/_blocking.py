"""The hook on ``pika.BlockingChannel.basic_publish``: a shadow publish is confirmed at once.

A blocking channel in confirm mode waits in ``basic_publish`` for the broker's ``Basic.Ack``;
in shadow nothing is sent, so the hook frames the message (raising what pika would raise)
and returns as a confirmed publish returns. It never calls the channel's ``_impl``, whose own
hook would refuse a channel in confirm mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pika import spec

from shadowguard._amqp import record_publish
from shadowguard.contract import PROCESS, mark_wrapped, scope_now
from shadowguard.integrations.pika._channel import CLIENT, check_publish, target_of

__all__ = ["publish_hook"]


def publish_hook(original: Callable[..., Any]) -> Callable[..., Any]:
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
        impl = self._impl
        size = check_publish(impl, exchange, routing_key, body, properties, mandatory)
        record_publish(
            CLIENT,
            target_of(impl),
            exchange,
            routing_key,
            size,
            mandatory=mandatory,
            confirm=bool(self._delivery_confirmation),
        )
        return None

    basic_publish.__doc__ = original.__doc__
    return mark_wrapped(basic_publish, original)
