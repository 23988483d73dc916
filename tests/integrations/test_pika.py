"""pika against the real RabbitMQ: shadow publishes never arrive, primary queues are left alone.

The oracle counts a queue's ready messages with a passive ``queue_declare``. A primary
publish after the shadow ones, on the same channel with confirms on, proves the shadow ones
were not merely slow: a channel's messages arrive in order.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pika.exceptions import (
    ChannelClosedByBroker,
    ChannelWrongStateError,
    UnsupportedAMQPFieldException,
)

import shadowguard
from shadowguard import Kind, ShadowSideEffectBlocked
from shadowguard import _config as config
from shadowguard.contract import is_wrapped
from shadowguard.integrations import pika as sink
from tests.integrations._amqp_checks import (
    check_bindings_unchanged,
    check_purges_and_deletes_unchanged,
)
from tests.integrations._support import installing
from tests.peers.rabbitmq import RabbitPeer

SINK = "pika"


@pytest.fixture
def conn(rabbit: RabbitPeer) -> Iterator[Any]:
    """A connection made before ``install()`` (the ``installed`` fixture comes after it)."""
    connection = rabbit.connect()
    try:
        yield connection
    finally:
        if connection.is_open:
            connection.close()


@pytest.fixture
def channel(conn: Any) -> Any:
    """A channel of ``conn``, opened when the test starts."""
    return conn.channel()


@pytest.fixture
def shadow_mode() -> Iterator[None]:
    """The whole process is shadow, as in a worker run with SHADOW_MODE=true."""
    config.configure(mode="shadow")
    try:
        yield
    finally:
        config.reset()


@pytest.mark.parametrize("confirm", [True, False], ids=["confirms", "no confirms"])
def test_shadow_publish_never_arrives_and_primary_does(
    rabbit: RabbitPeer, conn: Any, confirm: bool
) -> None:
    queue = rabbit.queue("orders")
    exchange = rabbit.fanout("fan", queue)
    channel = conn.channel()  # created before install()
    if confirm:
        channel.confirm_delivery()
    with installing(sink):
        with shadowguard.shadow() as scope:
            assert channel.basic_publish("", queue, b"shadow-default") is None
            assert channel.basic_publish(exchange, "any", "shadow-str") is None
            channel.basic_publish(exchange, "", b"x", pika.BasicProperties(headers={"a": 1}))
        channel.basic_publish("", queue, b"primary")
        assert rabbit.bodies_until(queue, b"primary") == [b"primary"]
        assert rabbit.depth(queue) == 0
    records = [s for s in scope.suppressed if s.kind == Kind.AMQP_PUBLISH]
    assert [(s.detail["exchange"], s.detail["routing_key"]) for s in records] == [
        ("", queue),
        (exchange, "any"),
        (exchange, ""),
    ]
    assert records[1].detail["body_bytes"] == len(b"shadow-str")
    assert all(s.detail["confirm"] is confirm for s in records)
    assert records[0].target == f"amqp://{rabbit.host}:{rabbit.port}/"


_NOT_A_BODY = st.one_of(
    st.integers(),
    st.none(),
    st.floats(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=_NOT_A_BODY)
def test_a_body_of_the_wrong_type_fails_in_shadow_as_in_primary(
    rabbit: RabbitPeer, conn: Any, body: Any
) -> None:
    queue = rabbit.name("typed")
    channel = conn.channel()
    channel.queue_declare(queue, auto_delete=True)

    def outcome() -> tuple[type[BaseException], str] | None:
        try:
            channel.basic_publish("", queue, body)
        except Exception as exc:
            return type(exc), str(exc)
        return None

    with installing(sink):
        with shadowguard.shadow():
            in_shadow = outcome()
        in_primary = outcome()
    # What the client does with it (pika 1.4 raises AttributeError; older releases differ).
    assert in_shadow == in_primary
    assert channel.is_open
    assert rabbit.depth(queue) == (0 if in_primary is not None else 1)  # the primary's only
    channel.close()


def test_bad_properties_fail_in_shadow_as_in_primary(rabbit: RabbitPeer, channel: Any) -> None:
    queue = rabbit.queue("props")
    bad = pika.BasicProperties(headers={"h": object()})
    with installing(sink):
        with shadowguard.shadow(), pytest.raises(UnsupportedAMQPFieldException):
            channel.basic_publish("", queue, b"x", bad)
        with pytest.raises(UnsupportedAMQPFieldException):
            channel.basic_publish("", queue, b"x", bad)
    assert rabbit.depth(queue) == 0


def test_a_closed_channel_fails_in_shadow_as_in_primary(rabbit: RabbitPeer, channel: Any) -> None:
    channel.close()
    with installing(sink), shadowguard.shadow(), pytest.raises(ChannelWrongStateError):
        channel.basic_publish("", rabbit.name("q"), b"x")


@pytest.mark.usefixtures("installed")
def test_consuming_a_primary_queue_is_refused_and_its_messages_stay(
    rabbit: RabbitPeer, channel: Any
) -> None:
    queue = rabbit.queue("work")
    rabbit.publish(queue, b"job")
    with shadowguard.shadow() as scope:
        with pytest.raises(ShadowSideEffectBlocked, match="fanout") as refused:
            channel.basic_consume(queue, lambda *a: None)
        assert f"'{queue}-shadow'" in str(refused.value)
        with pytest.raises(ShadowSideEffectBlocked, match="basic_get"):
            channel.basic_get(queue)
        with pytest.raises(ShadowSideEffectBlocked):
            next(channel.consume(queue, inactivity_timeout=0.1))
        with pytest.raises(ShadowSideEffectBlocked, match="''"):
            channel.basic_get("")  # "the last declared queue" may be the primary's
    assert [s.detail["operation"] for s in scope.suppressed] == [
        "basic_consume",
        "basic_get",
        "basic_consume",
        "basic_get",
    ]
    assert all(s.blocked and s.kind == Kind.AMQP_CONSUME for s in scope.suppressed)
    assert rabbit.depth(queue) == 1
    assert channel.is_open
    assert channel.basic_get(queue, auto_ack=True)[2] == b"job"  # primary still consumes


def test_a_shadow_worker_consumes_its_mirror_queue_and_the_primary_keeps_its_copy(
    rabbit: RabbitPeer, conn: Any, shadow_mode: None
) -> None:
    """The recipe: a fanout exchange copies each message to the primary's and the shadow's
    queue; the shadow worker (SHADOW_MODE) consumes and acks its own; its handler is shadow."""
    primary_q, mirror_q = rabbit.name("orders"), rabbit.name("orders-shadow")
    rabbit.queue("orders"), rabbit.queue("orders-shadow")  # no guard installed yet
    exchange = rabbit.fanout("orders-fan", primary_q, mirror_q)
    rabbit.oracle.basic_publish(exchange, "", b"o-1")
    rabbit.oracle.basic_publish(exchange, "", b"o-2")
    seen: list[tuple[bytes, bool]] = []
    with installing(sink):
        channel = conn.channel()
        channel.confirm_delivery()

        def handle(ch: Any, method: Any, properties: Any, body: bytes) -> None:
            seen.append((body, shadowguard.is_shadow()))
            ch.basic_publish(exchange, "", b"reply from shadow")  # suppressed
            ch.basic_ack(method.delivery_tag)  # the shadow's own message: acked
            if len(seen) == 2:
                ch.stop_consuming()

        channel.basic_consume(mirror_q, handle)
        channel.start_consuming()
        with pytest.raises(ShadowSideEffectBlocked):
            channel.basic_consume(primary_q, handle)
    config.reset()
    assert seen == [(b"o-1", True), (b"o-2", True)]
    assert rabbit.depth(mirror_q) == 0  # acked
    assert rabbit.bodies(primary_q) == [b"o-1", b"o-2"]  # untouched, no shadow reply


def test_a_shadow_ack_of_a_primary_delivery_is_suppressed(rabbit: RabbitPeer, conn: Any) -> None:
    queue = rabbit.queue("acks")
    for body in (b"a", b"b", b"c"):
        rabbit.publish(queue, body)
    channel = conn.channel()
    with installing(sink):
        tags = [channel.basic_get(queue)[0].delivery_tag for _ in range(3)]
        with shadowguard.shadow() as scope:
            channel.basic_ack(tags[0])
            channel.basic_nack(tags[1], requeue=False)
            channel.basic_reject(tags[2], requeue=False)
            channel.basic_ack(0, multiple=True)
        assert [s.detail["operation"] for s in scope.suppressed] == [
            "basic_ack",
            "basic_nack",
            "basic_reject",
            "basic_ack",
        ]
        assert scope.suppressed[1].detail["requeue"] is False
        channel.close()  # unacked deliveries go back to the queue
        assert rabbit.depth(queue) == 3
        again = conn.channel()
        method = again.basic_get(queue)[0]
        again.basic_ack(method.delivery_tag)  # primary acks run
        assert rabbit.depth(queue) == 2


@pytest.mark.usefixtures("installed")
def test_purges_and_deletes_of_the_primary_are_answered_from_a_passive_declare(
    rabbit: RabbitPeer, channel: Any
) -> None:
    queue = rabbit.queue("keep")
    mirror = rabbit.queue("keep-shadow")
    exchange = rabbit.fanout("keep-fan", queue, mirror)
    rabbit.oracle.basic_publish(exchange, "", b"m")
    with shadowguard.shadow() as scope:
        assert channel.queue_purge(queue).method.message_count == 1
        assert channel.queue_delete(queue).method.message_count == 1
        channel.exchange_delete(exchange)
        assert channel.queue_purge(mirror).method.message_count == 1  # the shadow's own: runs
    check_purges_and_deletes_unchanged(rabbit, scope, queue, mirror, exchange)
    with shadowguard.shadow(), pytest.raises(ChannelClosedByBroker) as missing:
        channel.queue_purge(rabbit.name("missing"))  # fails as the primary's purge would
    assert missing.value.reply_code == 404


def test_a_select_connection_channel_publishes_nothing_in_shadow(rabbit: RabbitPeer) -> None:
    """The asynchronous adapters share ``pika.channel.Channel``; one in confirm mode refuses."""
    queue = rabbit.queue("select")
    outcome: dict[str, Any] = {}

    def on_channel(channel: Any) -> None:
        with shadowguard.shadow() as scope:
            channel.basic_publish("", queue, b"shadow")
        outcome["records"] = [s.kind for s in scope.suppressed]
        channel.basic_publish("", queue, b"primary")

        def confirmed(_frame: Any) -> None:
            pass

        channel.confirm_delivery(confirmed, callback=lambda _f: in_confirm_mode(channel))

    def in_confirm_mode(channel: Any) -> None:
        with shadowguard.shadow():
            try:
                channel.basic_publish("", queue, b"shadow-confirm")
            except ShadowSideEffectBlocked as exc:
                outcome["refused"] = str(exc)
        channel.connection.close()

    connection = pika.SelectConnection(
        rabbit.parameters(), on_open_callback=lambda c: c.channel(on_open_callback=on_channel)
    )
    with installing(sink):
        connection.ioloop.call_later(10, connection.ioloop.stop)  # a safety net, not a timing
        connection.add_on_close_callback(lambda *_: connection.ioloop.stop())
        connection.ioloop.start()
    assert outcome["records"] == [Kind.AMQP_PUBLISH]
    assert "confirm mode" in outcome["refused"]
    assert rabbit.bodies_until(queue, b"primary") == [b"primary"]


def test_shadow_and_primary_threads_on_their_own_connections(rabbit: RabbitPeer) -> None:
    queue = rabbit.queue("threads")
    errors: list[BaseException] = []

    def publish(shadow: bool, n: int) -> None:
        try:
            connection = rabbit.connect()
            channel = connection.channel()
            channel.confirm_delivery()
            for i in range(n):
                if shadow:
                    with shadowguard.shadow():
                        channel.basic_publish("", queue, b"s%d" % i)
                else:
                    channel.basic_publish("", queue, b"p%d" % i)
            connection.close()
        except BaseException as exc:
            errors.append(exc)

    with installing(sink):
        threads = [threading.Thread(target=publish, args=(i % 2 == 0, 20)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert sorted(rabbit.bodies(queue)) == sorted(b"p%d" % i for i in range(20) for _ in (1, 2))


def test_install_patches_the_classes_and_uninstall_restores_them() -> None:
    from pika.adapters.blocking_connection import BlockingChannel
    from pika.channel import Channel

    names = ["basic_publish", "basic_consume", "basic_ack", "queue_purge", "exchange_delete"]
    with installing(sink):
        assert all(is_wrapped(getattr(Channel, n)) for n in names)
        assert is_wrapped(BlockingChannel.basic_publish)
        sink.install()  # idempotent
    assert not any(is_wrapped(getattr(Channel, n)) for n in names)
    assert not is_wrapped(BlockingChannel.basic_publish)


@pytest.mark.parametrize(
    "options",
    [{"shadow_suffix": ""}, {"shadow_queues": "q"}, {"shadow_queues": [""]}, {"nope": 1}],
)
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises((shadowguard.ConfigError, TypeError)):
        sink.install(**options)
    from pika.channel import Channel

    assert not is_wrapped(Channel.basic_publish)


def test_named_shadow_queues_and_server_named_queues_are_the_shadows_own(
    rabbit: RabbitPeer, channel: Any
) -> None:
    queue = rabbit.queue("mine")
    rabbit.publish(queue, b"m")
    with installing(sink, shadow_queues=[queue]), shadowguard.shadow():
        method, _, body = channel.basic_get(queue)
        channel.basic_ack(method.delivery_tag)  # the channel took only from its own queue
        temp = channel.queue_declare("", exclusive=True).method.queue
        channel.basic_consume(temp, lambda *a: None)
    assert body == b"m"
    assert rabbit.depth(queue) == 0


def test_a_consumer_started_in_shadow_handles_its_messages_as_shadow_after_the_scope(
    rabbit: RabbitPeer, conn: Any
) -> None:
    """``start_consuming()`` outside the scope still runs the handler as shadow: its publish
    is dropped and its ack (of the mirror queue's message) runs."""
    mirror = rabbit.queue("late-shadow")
    rabbit.publish(mirror, b"m")
    out = rabbit.queue("out")
    seen: list[bool] = []
    with installing(sink):
        channel = conn.channel()

        def handle(ch: Any, method: Any, properties: Any, body: bytes) -> None:
            seen.append(shadowguard.is_shadow())
            ch.basic_publish("", out, b"from the handler")
            ch.basic_ack(method.delivery_tag)
            ch.stop_consuming()

        with shadowguard.shadow():
            channel.basic_consume(mirror, handle)
        channel.start_consuming()  # as primary
    assert seen == [True]
    assert rabbit.depth(out) == 0
    assert rabbit.depth(mirror) == 0


def test_a_shadow_mode_worker_reads_its_mirror_queue_with_the_consume_generator(
    rabbit: RabbitPeer, conn: Any, shadow_mode: None
) -> None:
    mirror = rabbit.queue("gen-shadow")
    for body in (b"a", b"b"):
        rabbit.oracle.basic_publish("", mirror, body)
    bodies = []
    with installing(sink):
        channel = conn.channel()
        for method, _, body in channel.consume(mirror, inactivity_timeout=10):
            assert method is not None, "the mirror queue's messages did not arrive"
            bodies.append(body)
            channel.basic_ack(method.delivery_tag)
            if len(bodies) == 2:
                break
        channel.cancel()
    config.reset()
    assert bodies == [b"a", b"b"]
    assert rabbit.depth(mirror) == 0


def test_a_shadow_mode_worker_process_beside_the_primary(rabbit: RabbitPeer) -> None:
    """The recipe with a real ``SHADOW_MODE=true`` process: it consumes and acks its mirror
    queue, its handler's publishes are dropped, the primary's queue keeps every message."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    queue, out = rabbit.queue("jobs"), rabbit.queue("handled")
    mirror = rabbit.queue("jobs-shadow")
    exchange = rabbit.fanout("jobs-fan", queue, mirror)
    for body in (b"j-1", b"j-2", b"j-3"):
        rabbit.oracle.basic_publish(exchange, "", body)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "SHADOW_MODE": "true", "PYTHONPATH": str(root)}
    args = [rabbit.host, str(rabbit.port), queue, out, "3"]
    worker = subprocess.run(
        [sys.executable, "-m", "tests.integrations._rabbitmq_worker", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,  # a bound for a broken run, not a timing
        check=False,
    )
    assert worker.returncode == 0, worker.stderr
    report = json.loads(worker.stdout)
    assert report["seen"] == [["j-1", True], ["j-2", True], ["j-3", True]]
    assert "mirror queue" in report["refused"]
    assert rabbit.depth(mirror) == 0
    assert rabbit.depth(out) == 0
    assert rabbit.bodies(queue) == [b"j-1", b"j-2", b"j-3"]


@pytest.mark.usefixtures("installed")
def test_bindings_of_the_primary_are_answered_and_the_mirrors_run(
    rabbit: RabbitPeer, channel: Any
) -> None:
    """A shadow (un)binding of a primary queue would change which messages it gets."""
    queue, mirror = rabbit.queue("routed"), rabbit.queue("routed-shadow")
    bound_fan = rabbit.fanout("bound", queue)
    other_fan = rabbit.fanout("other")
    with shadowguard.shadow() as scope:
        channel.queue_unbind(queue, bound_fan, "")
        channel.queue_bind(queue, other_fan)
        channel.exchange_bind(bound_fan, other_fan)
        channel.exchange_unbind(bound_fan, other_fan)
        channel.queue_bind(mirror, bound_fan)  # the shadow's own queue: runs
    check_bindings_unchanged(rabbit, scope, bound_fan, other_fan, queue, mirror)
    with shadowguard.shadow(), pytest.raises(ChannelClosedByBroker) as missing:
        channel.queue_bind(rabbit.name("missing"), bound_fan)  # fails as the primary's would
    assert missing.value.reply_code == 404
