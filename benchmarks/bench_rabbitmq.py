"""The RabbitMQ guards on the primary path: real confirmed publishes to the broker on loopback.

pika: a ``BlockingConnection`` channel in confirm mode, one broker round trip per publish.
aio-pika: ``default_exchange.publish`` with publisher confirms, one ``run_until_complete``
per publish. Both sides publish on the same channel, interleaved: before each unguarded
sample the original methods are bound on the channel (and on its pika ``_impl``), which
shadows the installed patches on the classes, exactly the path without shadowguard; before
each guarded sample they are unbound. A suppressed shadow publish (no round trip) is timed
against the primary one, to show what shadow traffic costs instead.
"""

from __future__ import annotations

import asyncio
import os
import types
import uuid
from typing import Any

from benchmarks._harness import Harness
from shadowguard import shadow

HOST = os.environ.get("SHADOWGUARD_BENCH_RABBITMQ_HOST", "127.0.0.1")
PORT = int(os.environ.get("SHADOWGUARD_BENCH_RABBITMQ_PORT", "5672"))
#: The queue keeps at most this many messages (the oldest are dropped): a bench run
#: publishes hundreds of thousands.
MAX_LENGTH = 100


class _Toggle:
    """Binds the classes' methods (the originals, taken before ``install()``) on instances,
    shadowing the patches on the classes, and unbinds them: one channel, both paths."""

    def __init__(self, *targets: tuple[Any, type, str]) -> None:
        self._targets = [
            (obj, name, types.MethodType(vars(cls)[name], obj)) for obj, cls, name in targets
        ]

    def unguarded(self) -> None:
        for obj, name, method in self._targets:
            vars(obj)[name] = method

    def guarded(self) -> None:
        for obj, name, _ in self._targets:
            vars(obj).pop(name, None)


def _pika(h: Harness, queue: str) -> None:
    if not h.imports("pika", missing="pika is not installed: pip install 'shadowguard[pika]'"):
        return
    import pika
    import pika.channel
    from pika.adapters.blocking_connection import BlockingChannel

    from shadowguard.integrations import pika as sink

    parameters = pika.ConnectionParameters(HOST, PORT)
    try:
        plain_conn = pika.BlockingConnection(parameters)
    except pika.exceptions.AMQPConnectionError as exc:
        h.note(f"no RabbitMQ at {HOST}:{PORT} ({exc!r}): the rabbitmq comparisons are skipped")
        return
    channel = plain_conn.channel()
    channel.queue_declare(queue, arguments={"x-max-length": MAX_LENGTH})
    channel.confirm_delivery()
    toggle = _Toggle(
        (channel, BlockingChannel, "basic_publish"),
        (channel._impl, pika.channel.Channel, "basic_publish"),
    )
    sink.install()
    try:
        h.compare(
            "pika confirmed publish loopback, primary: guarded vs unguarded",
            lambda: channel.basic_publish("", queue, b"bench"),
            lambda: channel.basic_publish("", queue, b"bench"),
            target_ratio=1.03,
            before_baseline=toggle.unguarded,
            before_guarded=toggle.guarded,
        )

        def suppressed() -> None:
            with shadow("bench"):
                channel.basic_publish("", queue, b"bench")

        h.compare(
            "pika: shadow suppressed publish vs real primary publish",
            lambda: channel.basic_publish("", queue, b"bench"),
            suppressed,
            before_baseline=toggle.guarded,
        )
    finally:
        sink.uninstall()
        toggle.guarded()
        channel.queue_delete(queue)
        plain_conn.close()


def _aio_pika(h: Harness, queue: str) -> None:
    if not h.imports(
        "aio_pika",
        missing="aio-pika is not installed: pip install 'shadowguard[aio-pika]'",
    ):
        return
    import aio_pika
    import aiormq.channel

    from shadowguard.integrations import aio_pika as sink

    url = f"amqp://guest:guest@{HOST}:{PORT}/"
    loop = asyncio.new_event_loop()

    # aio-pika wants a running loop when its objects are made: each step is a coroutine.
    async def open_channel() -> tuple[Any, Any]:
        connection = await aio_pika.connect(url)
        return connection, await connection.channel()

    async def setup() -> tuple[Any, Any, _Toggle]:
        connection, channel = await open_channel()
        await channel.declare_queue(queue, arguments={"x-max-length": MAX_LENGTH})
        underlay = await channel.get_underlay_channel()
        return connection, channel, _Toggle((underlay, aiormq.channel.Channel, "basic_publish"))

    async def publish_one(channel: Any) -> None:
        await channel.default_exchange.publish(aio_pika.Message(b"bench"), routing_key=queue)

    async def close(connection: Any, channel: Any) -> None:
        await channel.queue_delete(queue)
        await connection.close()

    try:
        connection, channel, toggle = loop.run_until_complete(setup())
    except (OSError, aiormq.exceptions.AMQPError) as exc:
        h.note(f"no RabbitMQ at {HOST}:{PORT} ({exc!r}): the aio-pika comparisons are skipped")
        loop.close()
        return
    sink.install()
    try:
        h.compare(
            "aio-pika confirmed publish loopback, primary: guarded vs unguarded",
            lambda: loop.run_until_complete(publish_one(channel)),
            lambda: loop.run_until_complete(publish_one(channel)),
            target_ratio=1.03,
            before_baseline=toggle.unguarded,
            before_guarded=toggle.guarded,
        )
    finally:
        sink.uninstall()
        toggle.guarded()
        loop.run_until_complete(close(connection, channel))
        loop.close()


def run(h: Harness) -> None:
    saved = h.sample_seconds, h.samples
    # Network round trips are noisier than the core's microbenchmarks: sample longer.
    h.sample_seconds, h.samples = max(h.sample_seconds, 0.05), max(h.samples, 15)
    try:
        _pika(h, f"shadowguard-bench-{uuid.uuid4().hex[:8]}")
        _aio_pika(h, f"shadowguard-bench-{uuid.uuid4().hex[:8]}")
    finally:
        h.sample_seconds, h.samples = saved
