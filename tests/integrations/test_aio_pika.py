"""aio-pika against the real RabbitMQ: the same guarantees as pika, through ``aiormq.Channel``.

The oracle is the pika ``BlockingConnection`` of the ``rabbit`` fixture (passive declares
count ready messages). aio-pika channels have publisher confirms on by default, so a primary
publish has arrived once ``publish()`` returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import aiormq
import pytest
import pytest_asyncio
from pamqp import commands as spec

import shadowguard
from shadowguard import Kind, ShadowSideEffectBlocked
from shadowguard import _config as config
from shadowguard.contract import is_wrapped
from shadowguard.integrations import aio_pika as sink
from tests.integrations._amqp_checks import (
    check_bindings_unchanged,
    check_purges_and_deletes_unchanged,
)
from tests.integrations._support import installing
from tests.peers.rabbitmq import RabbitPeer

SINK = "aio_pika"


@pytest_asyncio.fixture
async def connection(rabbit: RabbitPeer) -> AsyncIterator[Any]:
    """A robust connection made before ``install()``."""
    conn = await aio_pika.connect_robust(rabbit.url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("confirms", [True, False], ids=["confirms", "no confirms"])
async def test_shadow_publish_never_arrives_and_primary_does(
    rabbit: RabbitPeer, connection: Any, confirms: bool
) -> None:
    queue = rabbit.queue("orders")
    fan = rabbit.fanout("fan", queue)
    channel = await connection.channel(publisher_confirms=confirms)  # before install()
    exchange = await channel.get_exchange(fan)
    with installing(sink):
        with shadowguard.shadow() as scope:
            ack = await channel.default_exchange.publish(aio_pika.Message(b"s1"), routing_key=queue)
            await exchange.publish(aio_pika.Message(b"s2", headers={"a": 1}), routing_key="k")
        await channel.default_exchange.publish(aio_pika.Message(b"primary"), routing_key=queue)
    assert isinstance(ack, spec.Basic.Ack) if confirms else ack is None
    assert rabbit.bodies_until(queue, b"primary") == [b"primary"]
    assert rabbit.depth(queue) == 0
    assert [(s.kind, s.detail["exchange"], s.detail["routing_key"]) for s in scope.suppressed] == [
        (Kind.AMQP_PUBLISH, "", queue),
        (Kind.AMQP_PUBLISH, fan, "k"),
    ]
    assert all(s.detail["confirm"] is confirms for s in scope.suppressed)
    assert scope.suppressed[0].target == f"amqp://{rabbit.host}:{rabbit.port}/"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("message", "error"),
    [
        (lambda: aio_pika.Message(b"x", headers={"h": object()}), TypeError),  # type: ignore[dict-item]
        (lambda: aio_pika.Message(b"x", priority="high"), None),  # type: ignore[arg-type]  # whatever the primary raises
    ],
    ids=["unencodable header", "priority of the wrong type"],
)
async def test_a_message_that_cannot_be_encoded_fails_in_shadow_as_in_primary(
    rabbit: RabbitPeer, connection: Any, message: Any, error: type[BaseException] | None
) -> None:
    queue = rabbit.queue("typed")
    channel = await connection.channel()
    failures: list[str] = []
    with installing(sink):
        for shadow in (True, False):
            try:
                if shadow:
                    with shadowguard.shadow():
                        await channel.default_exchange.publish(message(), routing_key=queue)
                else:
                    await channel.default_exchange.publish(message(), routing_key=queue)
            except Exception as exc:  # compared below
                failures.append(type(exc).__name__)
            else:
                failures.append("none")
    assert failures[0] == failures[1]
    if error is not None:
        assert failures[0] == error.__name__
    assert rabbit.depth(queue) == (1 if failures[1] == "none" else 0)


@pytest.mark.asyncio
@pytest.mark.usefixtures("installed")
async def test_consuming_a_primary_queue_is_refused_and_its_messages_stay(
    rabbit: RabbitPeer, connection: Any
) -> None:
    name = rabbit.queue("work")
    rabbit.publish(name, b"job")
    channel = await connection.channel()
    queue = await channel.get_queue(name)

    async def handle(message: Any) -> None:
        raise AssertionError("a refused consumer got a message")

    with shadowguard.shadow() as scope:
        with pytest.raises(ShadowSideEffectBlocked, match="mirror queue"):
            await queue.consume(handle)
        with pytest.raises(ShadowSideEffectBlocked, match="basic_get"):
            await queue.get()
        iterator = queue.iterator()
        with pytest.raises(ShadowSideEffectBlocked):
            await iterator.__aenter__()  # what `async with queue.iterator()` runs first
    assert [s.detail["operation"] for s in scope.suppressed] == [
        "basic_consume",
        "basic_get",
        "basic_consume",
    ]
    assert all(s.blocked and s.kind == Kind.AMQP_CONSUME for s in scope.suppressed)
    assert rabbit.depth(name) == 1
    message = await queue.get()  # the primary still consumes, on the same channel
    await message.ack()
    assert message.body == b"job"


@pytest.mark.asyncio
async def test_a_shadow_worker_consumes_its_mirror_queue_and_the_primary_keeps_its_copy(
    rabbit: RabbitPeer, connection: Any
) -> None:
    primary_q, mirror_q = rabbit.queue("orders"), rabbit.queue("orders-shadow")
    fan = rabbit.fanout("orders-fan", primary_q, mirror_q)
    for body in (b"o-1", b"o-2"):
        rabbit.oracle.basic_publish(fan, "", body)
    seen: list[tuple[bytes, bool]] = []
    config.configure(mode="shadow")
    try:
        with installing(sink):
            channel = await connection.channel()
            exchange = await channel.get_exchange(fan)
            queue = await channel.get_queue(mirror_q)
            async with queue.iterator() as messages:
                async for message in messages:
                    async with message.process():  # acks at the end: the shadow's own
                        seen.append((message.body, shadowguard.is_shadow()))
                        await exchange.publish(aio_pika.Message(b"from shadow"), routing_key="")
                    if len(seen) == 2:
                        break
            with pytest.raises(ShadowSideEffectBlocked):
                await (await channel.get_queue(primary_q)).get()
            await channel.close()
    finally:
        config.reset()
    assert seen == [(b"o-1", True), (b"o-2", True)]
    assert rabbit.depth(mirror_q) == 0
    assert rabbit.bodies(primary_q) == [b"o-1", b"o-2"]


@pytest.mark.asyncio
async def test_a_shadow_ack_of_a_primary_delivery_is_suppressed(
    rabbit: RabbitPeer, connection: Any
) -> None:
    name = rabbit.queue("acks")
    for body in (b"a", b"b", b"c"):
        rabbit.publish(name, body)
    channel = await connection.channel()
    queue = await channel.get_queue(name)
    with installing(sink):
        messages = [await queue.get() for _ in range(3)]
        with shadowguard.shadow() as scope:
            await messages[0].ack()
            await messages[1].nack(requeue=False)
            await messages[2].reject()
        assert [s.detail["operation"] for s in scope.suppressed] == [
            "basic_ack",
            "basic_nack",
            "basic_reject",
        ]
        await channel.close()  # unacked deliveries go back to the queue
    assert rabbit.depth(name) == 3


@pytest.mark.asyncio
@pytest.mark.usefixtures("installed")
async def test_purges_and_deletes_of_the_primary_are_answered_from_a_passive_declare(
    rabbit: RabbitPeer, connection: Any
) -> None:
    name, mirror_name = rabbit.queue("keep"), rabbit.queue("keep-shadow")
    fan = rabbit.fanout("keep-fan", name, mirror_name)
    rabbit.oracle.basic_publish(fan, "", b"m")
    channel = await connection.channel()
    queue, mirror = await channel.get_queue(name), await channel.get_queue(mirror_name)
    exchange = await channel.get_exchange(fan)
    with shadowguard.shadow() as scope:
        assert (await queue.purge()).message_count == 1
        assert (await queue.delete(if_empty=False)).message_count == 1
        await exchange.delete()
        assert (await mirror.purge()).message_count == 1  # the shadow's own: runs
    check_purges_and_deletes_unchanged(rabbit, scope, name, mirror_name, fan)
    plain = await connection.channel()
    with shadowguard.shadow(), pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
        await plain.queue_delete(rabbit.name("missing"))  # fails as the primary's would


@pytest.mark.asyncio
async def test_concurrent_shadow_and_primary_tasks_on_one_channel(
    rabbit: RabbitPeer, connection: Any
) -> None:
    queue = rabbit.queue("tasks")
    channel = await connection.channel()

    async def publish(shadow: bool, i: int) -> None:
        if shadow:
            with shadowguard.shadow():
                await asyncio.sleep(0)
                await channel.default_exchange.publish(aio_pika.Message(b"s"), routing_key=queue)
        else:
            await asyncio.sleep(0)
            await channel.default_exchange.publish(aio_pika.Message(b"p%d" % i), routing_key=queue)

    with installing(sink):
        await asyncio.gather(*(publish(i % 2 == 0, i) for i in range(40)))
    assert sorted(rabbit.bodies(queue)) == sorted(b"p%d" % i for i in range(1, 40, 2))


def test_install_patches_aiormq_and_uninstall_restores_it() -> None:
    names = ["basic_publish", "basic_consume", "basic_get", "basic_ack", "queue_delete"]
    channel = aiormq.channel.Channel
    with installing(sink):
        assert all(is_wrapped(getattr(channel, n)) for n in names)
        assert asyncio.iscoroutinefunction(channel.basic_publish)
    assert not any(is_wrapped(getattr(channel, n)) for n in names)


@pytest.mark.asyncio
async def test_a_consumer_started_in_shadow_handles_its_messages_as_shadow(
    rabbit: RabbitPeer, connection: Any
) -> None:
    """aiormq runs consumers in its reader task's context; the guard makes the handler shadow."""
    mirror_name, out = rabbit.queue("late-shadow"), rabbit.queue("out")
    channel = await connection.channel()  # created as primary
    done = asyncio.Event()
    seen: list[bool] = []

    async def handle(message: Any) -> None:
        async with message.process():
            seen.append(shadowguard.is_shadow())
            await channel.default_exchange.publish(aio_pika.Message(b"x"), routing_key=out)
        done.set()

    with installing(sink):
        queue = await channel.get_queue(mirror_name)
        with shadowguard.shadow():
            await queue.consume(handle)
        rabbit.publish(mirror_name, b"m")  # after the scope ended
        await asyncio.wait_for(done.wait(), 10)  # a bound for a broken run, not a timing
        await channel.close()
    assert seen == [True]
    assert rabbit.depth(out) == 0
    assert rabbit.depth(mirror_name) == 0


@pytest.mark.asyncio
async def test_a_shadow_get_of_a_named_shadow_queue_is_acked(
    rabbit: RabbitPeer, connection: Any
) -> None:
    name = rabbit.queue("audit-copy")
    rabbit.publish(name, b"m")
    channel = await connection.channel()
    with installing(sink, shadow_queues=[name]):
        queue = await channel.get_queue(name)
        with shadowguard.shadow() as scope:
            message = await queue.get()
            await message.ack()  # the channel took only from the shadow's own queue
        await channel.close()
    assert scope.suppressed == []
    assert rabbit.depth(name) == 0


@pytest.mark.asyncio
@pytest.mark.usefixtures("installed")
async def test_bindings_of_the_primary_are_answered_and_the_mirrors_run(
    rabbit: RabbitPeer, connection: Any
) -> None:
    name, mirror_name = rabbit.queue("routed"), rabbit.queue("routed-shadow")
    bound_fan, other_fan = rabbit.fanout("bound", name), rabbit.fanout("other")
    channel = await connection.channel()
    queue, mirror = await channel.get_queue(name), await channel.get_queue(mirror_name)
    bound, other = await channel.get_exchange(bound_fan), await channel.get_exchange(other_fan)
    with shadowguard.shadow() as scope:
        await queue.unbind(bound)
        await queue.bind(other)
        await bound.bind(other)
        await bound.unbind(other)
        await mirror.bind(bound)  # the shadow's own queue: runs
    check_bindings_unchanged(rabbit, scope, bound_fan, other_fan, name, mirror_name)
