"""Celery in shadow, edge by edge: results, serializers, redaction, odd calls, threads, workers.

Most tests use kombu's in-memory broker (its queues are the oracle); the ones about
connections and concurrency use the real RabbitMQ.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Any, NamedTuple

import kombu.messaging
import pytest
from celery import Celery, chord, group
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.worker import WorkController
from hypothesis import given, settings
from hypothesis import strategies as st
from kombu.exceptions import EncodeError, OperationalError
from kombu.transport.memory import Channel

import shadowguard
from shadowguard import ShadowSideEffectBlocked
from shadowguard.errors import ConfigError
from shadowguard.integrations import celery as sink
from shadowguard.integrations.celery import ShadowTaskResultUnavailable, _results
from tests.integrations._support import installing
from tests.peers.celery_brokers import Broker

SINK = "celery"


def _app(broker: str = "memory://", **conf: Any) -> tuple[Celery, str]:
    queue = f"sg-{uuid.uuid4().hex[:10]}"
    app = Celery(queue, broker=broker, backend="cache+memory://", set_as_current=False)
    app.conf.update(task_default_queue=queue, task_publish_retry=False, **conf)

    @app.task(name="sg.echo", shared=False)
    def echo(*args: Any, **kwargs: Any) -> Any:
        return args, kwargs

    return app, queue


def _depth(queue: str) -> int:
    found = Channel.queues.get(queue)
    return found.qsize() if found is not None else 0


class MemoryApp(NamedTuple):
    """An app on kombu's in-memory broker, and its default queue."""

    app: Celery
    queue: str

    def depth(self) -> int:
        return _depth(self.queue)


@pytest.fixture
def memory_app() -> Iterator[MemoryApp]:
    app, queue = _app()
    yield MemoryApp(app, queue)
    Channel.queues.pop(queue, None)


@pytest.fixture
def echo(memory_app: MemoryApp) -> Any:
    """The in-memory app's one task."""
    return memory_app.app.tasks["sg.echo"]


def test_an_app_created_before_install_is_guarded(rabbitmq_broker: Broker) -> None:
    queue = rabbitmq_broker.queue("early")
    app = Celery("early", broker=rabbitmq_broker.url, set_as_current=False)
    app.conf.task_default_queue = queue
    app.send_task("sg.early", ["primary-before-install"])  # the producer pool is warm
    with installing(sink):
        with shadowguard.shadow() as scope:
            app.send_task("sg.early", ["shadow"])
        assert scope.counts["celery.task"] == 1
        assert rabbitmq_broker.depth(queue) == 1
        app.send_task("sg.early", ["primary"])
        assert rabbitmq_broker.depth(queue) == 2
    with shadowguard.shadow():
        app.send_task("sg.early", ["unguarded-after-uninstall"])
    assert rabbitmq_broker.depth(queue) == 3  # uninstall() really restored kombu


@pytest.mark.usefixtures("installed")
def test_shadow_needs_no_broker_and_primary_still_fails_without_one() -> None:
    app, _ = _app("amqp://guest:guest@127.0.0.1:1//", broker_connection_timeout=1)
    with shadowguard.shadow() as scope:
        result = app.send_task("sg.echo", [1])
    assert scope.counts["celery.task"] == 1
    assert result.state == "PENDING"
    with pytest.raises(OperationalError):
        app.send_task("sg.echo", [1])


@pytest.mark.usefixtures("installed")
def test_results_of_suppressed_tasks_are_pending_and_never_waited_for(
    memory_app: MemoryApp, echo: Any
) -> None:
    app, queue = memory_app
    with shadowguard.shadow():
        result = echo.delay(1)
        grouped = group(echo.si(1), echo.si(2)).apply_async()
        chorded = chord([echo.si(1)], echo.s()).apply_async()
    assert _depth(queue) == 0
    # The objects outlive the shadow request; a result re-created from the id is the same.
    for late in (result, app.AsyncResult(result.id), chorded):
        assert late.state == "PENDING"
        assert late.ready() is False
        with pytest.raises(ShadowTaskResultUnavailable, match="was not sent") as caught:
            late.get()  # no timeout: it would otherwise wait forever
        assert isinstance(caught.value, CeleryTimeoutError)
        assert caught.value.task_id == late.id
    with pytest.raises(ShadowTaskResultUnavailable):
        result.wait(timeout=30)
    for join in (grouped.get, grouped.join, grouped.join_native):
        with pytest.raises(CeleryTimeoutError):
            join()
    primary = echo.delay(2)
    assert _depth(queue) == 1
    assert primary.state == "PENDING"  # a primary result still asks the backend


@pytest.mark.usefixtures("installed")
def test_an_argument_the_serializer_cannot_encode_fails_in_shadow_as_in_primary(
    memory_app: MemoryApp, echo: Any
) -> None:
    with shadowguard.shadow() as scope, pytest.raises(EncodeError):
        echo.delay(object())
    with pytest.raises(EncodeError):
        echo.delay(object())
    assert scope.counts.get("celery.task", 0) == 0
    with shadowguard.shadow() as scope:  # pickle can: recorded with its size
        echo.apply_async((object(),), serializer="pickle", compression="zlib")
    (suppression,) = scope.suppressed
    assert suppression.detail["content_type"] == "application/x-python-serialize"
    assert suppression.detail["bytes"] > 0
    assert memory_app.depth() == 0


@pytest.mark.usefixtures("installed")
def test_an_invalid_publish_option_fails_in_shadow_as_in_primary(
    memory_app: MemoryApp, echo: Any
) -> None:
    with shadowguard.shadow(), pytest.raises(KeyError):
        echo.apply_async((1,), delivery_mode="sometimes")
    with pytest.raises(KeyError):
        echo.apply_async((1,), delivery_mode="sometimes")
    assert memory_app.depth() == 0


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(min_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)


@pytest.mark.usefixtures("installed")
@settings(max_examples=40, deadline=None)
@given(
    args=st.lists(_VALUES, max_size=4),
    kwargs=st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), _VALUES, max_size=4),
)
def test_the_suppression_names_the_task_and_redacts_every_argument(
    args: list[Any], kwargs: dict[str, Any]
) -> None:
    app, queue = _app()
    with shadowguard.shadow() as scope:
        app.send_task("billing.charge", args, kwargs)
    (suppression,) = scope.suppressed
    assert suppression.kind == "celery.task"
    assert suppression.target == "billing.charge"
    assert suppression.detail["args"] == ("***",) * len(args)
    assert suppression.detail["kwargs"] == dict.fromkeys(kwargs, "***")
    assert suppression.detail["routing_key"] == queue
    secrets = [v for v in [*args, *kwargs.values()] if isinstance(v, str) and v != "***"]
    shown = repr(dict(suppression.detail))
    assert not [s for s in secrets if repr(s) in shown]
    assert _depth(queue) == 0


@pytest.mark.usefixtures("installed")
def test_events_and_remote_control_are_kombu_messages_recorded_not_sent(
    memory_app: MemoryApp,
) -> None:
    app, _ = memory_app
    app.conf.task_send_sent_event = True
    with shadowguard.shadow() as scope:
        app.tasks["sg.echo"].delay(1)
        app.control.revoke("some-task-id")
    kinds = [s.kind for s in scope.suppressed]
    assert kinds.count("celery.task") == 1
    assert kinds.count("celery.message") == 2  # the task-sent event and the broadcast
    assert not [s for s in scope.suppressed if s.blocked]


@pytest.mark.usefixtures("installed")
def test_purge_and_workers_are_refused_in_shadow(memory_app: MemoryApp) -> None:
    app, queue = memory_app
    app.tasks["sg.echo"].delay(1)
    worker = WorkController(app=app, pool="solo", queues=[queue], without_heartbeat=True)
    with shadowguard.shadow() as scope:
        with pytest.raises(ShadowSideEffectBlocked, match="purge"):
            app.control.purge()
        with pytest.raises(ShadowSideEffectBlocked, match=f"queue\\(s\\) {queue}.*shadow_queues"):
            worker.start()
    assert [s.kind for s in scope.suppressed] == ["celery.consume", "celery.consume"]
    assert all(s.blocked for s in scope.suppressed)
    assert _depth(queue) == 1


def test_shadow_queues_must_be_a_list_of_names() -> None:
    for bad in ("celery.shadow", [""], [1]):
        with pytest.raises(ConfigError, match="shadow_queues"):
            sink.install(shadow_queues=bad)
        sink.uninstall()


@pytest.mark.usefixtures("installed")
def test_primary_and_shadow_threads_share_one_app(rabbitmq_broker: Broker) -> None:
    """Concurrent shadow and primary sends through one producer pool: only primary lands."""
    queue = rabbitmq_broker.queue("threads")
    app = Celery("threads", broker=rabbitmq_broker.url, set_as_current=False)
    app.conf.task_default_queue = queue
    counts: list[int] = []
    start = threading.Barrier(8)

    def send(n: int) -> None:
        start.wait()
        if n % 2:
            with shadowguard.shadow() as scope:
                for i in range(25):
                    app.send_task("sg.thread", [n, i])
            counts.append(scope.counts["celery.task"])
        else:
            for i in range(25):
                app.send_task("sg.thread", [n, i])

    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counts == [25, 25, 25, 25]
    assert rabbitmq_broker.depth(queue) == 100


def test_uninstall_restores_kombu_and_celery() -> None:
    original = kombu.messaging.Producer.publish
    sink.install()
    assert kombu.messaging.Producer.publish is not original
    sink.uninstall()
    assert kombu.messaging.Producer.publish is original


@pytest.mark.usefixtures("installed")
def test_asyncio_tasks_in_shadow_and_primary_interleave(memory_app: MemoryApp, echo: Any) -> None:

    async def shadow_sends(n: int) -> int:
        with shadowguard.shadow() as scope:
            echo.delay(n)
            await asyncio.sleep(0)  # a primary task sends here
            echo.delay(n)
        return scope.counts["celery.task"]

    async def primary_send(n: int) -> None:
        await asyncio.sleep(0)
        echo.delay(n)

    async def main() -> list[Any]:
        return await asyncio.gather(
            *(shadow_sends(n) for n in range(10)), *(primary_send(n) for n in range(10))
        )

    counts = asyncio.run(main())
    assert counts[:10] == [2] * 10
    assert memory_app.depth() == 10


@pytest.mark.usefixtures("installed")
def test_a_producer_passed_in_by_the_caller_is_guarded_too(
    memory_app: MemoryApp, echo: Any
) -> None:
    app, queue = memory_app
    with app.producer_or_acquire() as producer:
        with shadowguard.shadow():
            echo.apply_async((1,), producer=producer)
            producer.publish({"raw": True}, routing_key=queue)  # kombu used directly
        echo.apply_async((2,), producer=producer)
    assert _depth(queue) == 1


def test_the_registry_of_suppressed_ids_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_results, "MAX_IDS", 3)
    try:
        _results.remember(["a", "b", "c", "d", "e"])
        assert [_results.was_suppressed(i) for i in "abcde"] == [False, False, True, True, True]
    finally:
        _results.forget()


def test_with_the_redis_guard_installed_too(celery_broker: Broker) -> None:
    """On a Redis broker the redis guard sits below kombu: the primary passes both guards."""
    from shadowguard.integrations import redis as redis_sink

    queue = celery_broker.queue("both")
    app = Celery("both", broker=celery_broker.url, set_as_current=False)
    app.conf.update(task_default_queue=queue, task_publish_retry=False)
    with installing(sink), installing(redis_sink):
        with shadowguard.shadow() as scope:
            app.send_task("sg.both", ["shadow"])
        assert scope.counts == {"celery.task": 1}  # nothing reached the Redis client
        assert celery_broker.depth(queue) == 0
        app.send_task("sg.both", ["primary"])
        assert celery_broker.depth(queue) == 1
