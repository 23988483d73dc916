"""Celery with a real worker on RabbitMQ and on Redis: shadow sends nothing, primary everything.

Tasks append a marker to a Redis list; the broker is asked how many messages wait in the
queue. A worker in a ``SHADOW_MODE`` process refuses the primary's queue, and one on a mirror
queue (RabbitMQ fanout) runs every task as shadow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from celery import Celery, chain, chord, group
from celery.contrib.testing.worker import start_worker

import shadowguard
from tests.integrations._celery_app import make_app
from tests.peers.celery_brokers import Broker
from tests.peers.processes import stop_process
from tests.peers.redis import RedisPeer

SINK = "celery"
ROOT = Path(__file__).resolve().parents[2]
#: Every way a task message leaves: (markers the worker writes for it, messages sent now).
WAYS = 12


def _wait_for(what: str, ready: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


@contextmanager
def _worker(app: Celery) -> Iterator[Any]:
    with start_worker(
        app, pool="solo", perform_ping_check=False, shutdown_timeout=30, loglevel="WARNING"
    ) as worker:
        yield worker


def _send_every_way(app: Celery, tag: str) -> list[Any]:
    note, join = app.tasks["sg.note"], app.tasks["sg.join"]
    return [
        note.delay(f"{tag}:delay"),
        note.apply_async((f"{tag}:apply_async",), {"token": "s3cr3t"}),
        app.send_task("sg.note", [f"{tag}:send_task"]),
        note.s(f"{tag}:signature").apply_async(),
        note.s(f"{tag}:signature-delay").delay(),
        chain(note.si(f"{tag}:chain-1"), note.si(f"{tag}:chain-2")).apply_async(),
        group(note.si(f"{tag}:group-1"), note.si(f"{tag}:group-2")).apply_async(),
        chord([note.si(f"{tag}:chord-1"), note.si(f"{tag}:chord-2")], join.s(tag)).apply_async(),
    ]


def _markers(tag: str) -> set[str]:
    names = [
        "delay",
        "apply_async",
        "send_task",
        "signature",
        "signature-delay",
        "chain-1",
        "chain-2",
        "group-1",
        "group-2",
        "chord-1",
        "chord-2",
        "chord-body(2)",
    ]
    assert len(names) == WAYS
    return {f"{tag}:{name}" for name in names}


def _noted(redis_peer: RedisPeer) -> list[str]:
    return [m.decode() for m in redis_peer.oracle.lrange(redis_peer.key("noted"), 0, -1)]


@pytest.mark.usefixtures("installed")
def test_worker_gets_nothing_from_shadow_and_everything_from_primary(
    celery_broker: Broker, redis_peer: RedisPeer
) -> None:
    queue = celery_broker.queue("tasks")
    app = make_app(celery_broker.url, queue, redis_peer.url, redis_peer.key("noted"))
    with shadowguard.shadow() as scope:
        shadow_results = _send_every_way(app, "shadow")
    assert celery_broker.depth(queue) == 0
    # Ten messages: a chain sends its first step, a group and a chord header one per task.
    assert scope.counts["celery.task"] == 10
    assert {s.target for s in scope.suppressed} == {"sg.note"}
    assert not any(r.ready() for r in shadow_results)

    primary_results = _send_every_way(app, "primary")
    assert celery_broker.depth(queue) == 10
    with _worker(app):
        _wait_for("the primary's tasks", lambda: set(_noted(redis_peer)) >= _markers("primary"))
        assert primary_results[0].get(timeout=30) == "primary:delay"
        assert primary_results[-1].get(timeout=30) == "primary:chord-body(2)"
    assert sorted(_noted(redis_peer)) == sorted(_markers("primary"))
    assert celery_broker.depth(queue) == 0
    assert not any(r.ready() for r in shadow_results)  # still: never sent


def _worker_process(
    app_env: dict[str, str], queue: str, *, shadow_mode: bool
) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(app_env, PYTHONPATH=str(ROOT), SG_CELERY_INSTALL="1")
    env["SHADOW_MODE"] = "true" if shadow_mode else "false"
    command = [sys.executable, "-m", "celery", "-A", "tests.integrations._celery_app:app"]
    command += ["worker", "-Q", queue, "--pool=solo", "--loglevel=INFO"]
    command += ["--without-heartbeat", "--without-mingle", "--without-gossip"]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _app_env(broker: Broker, queue: str, redis_peer: RedisPeer, **extra: str) -> dict[str, str]:
    return {
        "SG_CELERY_BROKER": broker.url,
        "SG_CELERY_QUEUE": queue,
        "SG_CELERY_REDIS": redis_peer.url,
        "SG_CELERY_KEY": redis_peer.key("noted"),
        **extra,
    }


def test_shadow_mode_worker_refuses_the_primary_queue(
    celery_broker: Broker, redis_peer: RedisPeer
) -> None:
    """A SHADOW_MODE worker on the primary's queue exits before taking a message."""
    queue = celery_broker.queue("tasks")
    app = make_app(celery_broker.url, queue, redis_peer.url, redis_peer.key("noted"))
    app.tasks["sg.note"].delay("primary:waiting")
    assert celery_broker.depth(queue) == 1

    worker = _worker_process(_app_env(celery_broker, queue, redis_peer), queue, shadow_mode=True)
    try:
        output, _ = worker.communicate(timeout=120)
    finally:
        stop_process(worker)
    assert worker.returncode != 0
    assert f"would consume from the queue(s) {queue}" in output
    assert "shadow_queues" in output  # the remedy
    assert celery_broker.depth(queue) == 1
    assert _noted(redis_peer) == []


def test_shadow_worker_on_a_mirror_queue_runs_every_task_as_shadow(
    rabbitmq_broker: Broker, redis_peer: RedisPeer, tmp_path: Path
) -> None:
    """The recipe: a fanout exchange fills the primary's queue and a mirror queue; the
    SHADOW_MODE worker consumes the mirror and its tasks' Redis writes are suppressed."""
    queue, mirror = rabbitmq_broker.queue("tasks"), rabbitmq_broker.queue("tasks.shadow")
    rabbitmq_broker.exchanges.append(queue)
    trail = tmp_path / "shadow-trail.txt"
    env = _app_env(
        rabbitmq_broker,
        queue,
        redis_peer,
        SG_CELERY_MIRROR=mirror,
        SG_CELERY_SHADOW_QUEUES=mirror,
        SG_CELERY_TRAIL=str(trail),
    )
    app = make_app(
        rabbitmq_broker.url, queue, redis_peer.url, redis_peer.key("noted"), mirror=mirror
    )
    with app.connection_for_write() as conn:
        for declared in app.amqp.queues.values():
            declared.bind(conn.default_channel).declare()
    note = app.tasks["sg.note"]
    for n in range(3):
        note.delay(f"primary:{n}")
    assert rabbitmq_broker.depth(queue) == 3
    assert rabbitmq_broker.depth(mirror) == 3

    shadow_worker = _worker_process(env, mirror, shadow_mode=True)
    try:
        _wait_for(
            "the shadow worker to run the mirrored tasks",
            lambda: trail.exists() and len(trail.read_text().splitlines()) == 3,
        )
        _wait_for("the mirror queue to be acknowledged", lambda: rabbitmq_broker.depth(mirror) == 0)
    finally:
        stop_process(shadow_worker)
        output = shadow_worker.stdout.read() if shadow_worker.stdout else ""
    assert sorted(trail.read_text().splitlines()) == ["primary:0", "primary:1", "primary:2"]
    assert _noted(redis_peer) == [], output  # its Redis writes were shadow
    assert rabbitmq_broker.depth(queue) == 3  # the primary's queue untouched

    with _worker(app):
        _wait_for("the primary worker", lambda: len(_noted(redis_peer)) == 3)
    assert sorted(_noted(redis_peer)) == ["primary:0", "primary:1", "primary:2"]
