"""kombu's ``Producer.publish`` in shadow: serialize the message as the broker would get it,
send nothing, record it.

Every Celery message leaves through ``kombu.Producer.publish``: tasks (``apply_async``,
``delay``, ``send_task``, every canvas primitive), events, remote control and RPC results.
In shadow the hook runs the producer's own preparation (delivery mode, serializer,
compression), so an argument the app's serializer cannot encode fails as it would on the
primary, then records the message instead of declaring, connecting or publishing. A task
message (Celery's protocol 2, or 1) is recorded as ``celery.task`` naming the task, its
arguments redacted (one ``"***"`` per positional argument, keyword names kept), and its id
(with the ids of the chain steps and chord body it carries) is remembered for
:mod:`._results`; anything else is recorded as ``celery.message``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from shadowguard._outbound import REDACTED
from shadowguard.contract import PROCESS, Kind, mark_wrapped, record, scope_now
from shadowguard.integrations.celery._results import embedded_ids, remember

__all__ = ["broker_of", "publish_hook"]


def publish_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    def publish(self: Any, body: Any, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, body, *args, **kwargs)
        given = signature.bind(self, body, *args, **kwargs).arguments
        _shadow_publish(self, given)
        return None

    mark_wrapped(publish, original)
    return publish


def _shadow_publish(producer: Any, given: Mapping[str, Any]) -> None:
    headers = dict(given.get("headers") or {})  # the producer writes "compression" into it
    exchange = given.get("exchange") or producer.exchange
    producer._delivery_details(exchange, given.get("delivery_mode"))
    compression = given.get("compression")
    payload, content_type, _ = producer._prepare(
        given["body"],
        given.get("serializer"),
        given.get("content_type"),
        given.get("content_encoding"),
        producer.compression if compression is None else compression,
        headers,
    )
    routing_key = given.get("routing_key")
    detail: dict[str, Any] = {
        "exchange": getattr(exchange, "name", exchange) or "",
        "routing_key": producer.routing_key if routing_key is None else routing_key,
        "broker": broker_of(producer),
        "content_type": content_type,
        "bytes": len(payload) if isinstance(payload, (bytes, str)) else None,
    }
    task = _task_message(given["body"], headers)
    if task is None:
        target = f"{detail['exchange']}/{detail['routing_key']}"
        record(Kind.CELERY_MESSAGE, target, "publish", detail)
        return
    name, task_id, args, kwargs, embed = task
    remember([task_id, *embedded_ids(embed)])
    detail.update(task_id=task_id, args=_redacted_args(args), kwargs=_redacted_kwargs(kwargs))
    record(Kind.CELERY_TASK, name, "send_task", detail)


def _task_message(body: Any, headers: Mapping[str, Any]) -> tuple[str, str, Any, Any, Any] | None:
    """(name, id, args, kwargs, embed) of a Celery task message, else None."""
    name, task_id = headers.get("task"), headers.get("id")
    if isinstance(name, str) and isinstance(task_id, str):  # protocol 2
        parts = tuple(body) if isinstance(body, (list, tuple)) else ()
        if len(parts) == 3:
            return name, task_id, parts[0], parts[1], parts[2]
        return name, task_id, None, None, None
    if isinstance(body, Mapping):  # protocol 1: everything in the body
        name, task_id = body.get("task"), body.get("id")
        if isinstance(name, str) and isinstance(task_id, str):
            embed = {k: body.get(k) for k in ("callbacks", "errbacks", "chord")}
            return name, task_id, body.get("args"), body.get("kwargs"), embed
    return None


def _redacted_args(args: Any) -> tuple[str, ...]:
    return (REDACTED,) * len(args) if isinstance(args, (list, tuple)) else ()


def _redacted_kwargs(kwargs: Any) -> dict[str, str]:
    if not isinstance(kwargs, Mapping):
        return {}
    return {str(key): REDACTED for key in kwargs}


def broker_of(producer: Any) -> str:
    """The broker URL of ``producer``'s connection, without password; never connects."""
    connection = getattr(producer, "__connection__", None)
    if connection is None:
        channel = getattr(producer, "_channel", None)
        connection = getattr(getattr(channel, "connection", None), "client", None)
    try:
        return str(connection.as_uri()) if connection is not None else "?"
    except Exception:  # an odd transport's URL is not worth failing a shadow publish for
        return "?"
