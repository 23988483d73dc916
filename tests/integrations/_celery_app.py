"""A Celery app for the Celery tests, built in the test or in a worker subprocess.

Its task ``sg.note`` appends a marker to a Redis list (and, given a trail file, to that
file: a channel shadowguard does not guard, so a test can see a shadow worker ran it).
A worker subprocess builds the app from ``SG_CELERY_*`` variables (``-A
tests.integrations._celery_app:app``) and, with ``SG_CELERY_INSTALL=1``, installs the
celery and redis guards first.
"""

from __future__ import annotations

import os
from typing import Any

import redis
from celery import Celery
from kombu.entity import Exchange, Queue

import shadowguard
from tests.peers.celery_brokers import BACKEND_URL


def make_app(
    broker_url: str,
    queue: str,
    redis_url: str,
    key: str,
    *,
    mirror: str | None = None,
    trail: str | None = None,
) -> Celery:
    """An app sending to ``queue``; with ``mirror``, through a fanout exchange named after
    ``queue`` that also fills ``mirror`` (the shadow worker's queue)."""
    app = Celery(f"app-{queue}", broker=broker_url, backend=BACKEND_URL, set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        result_expires=300,
        broker_connection_retry_on_startup=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    if mirror is not None:
        fanout = Exchange(queue, type="fanout")
        app.conf.task_queues = [Queue(queue, fanout), Queue(mirror, fanout)]
        app.conf.task_default_exchange = queue
        app.conf.task_default_exchange_type = "fanout"

    def note_down(marker: str) -> str:
        with redis.Redis.from_url(redis_url) as client:
            client.rpush(key, marker)
        if trail is not None:
            with open(trail, "a", encoding="utf-8") as f:
                f.write(marker + "\n")
        return marker

    @app.task(name="sg.note", shared=False)
    def note(marker: str, token: str | None = None) -> str:
        return note_down(marker)

    @app.task(name="sg.join", shared=False)
    def join(markers: list[Any], tag: str) -> str:
        return note_down(f"{tag}:chord-body({len(markers)})")

    return app


def _from_environment() -> Celery | None:
    env = os.environ
    if "SG_CELERY_BROKER" not in env:
        return None
    if env.get("SG_CELERY_INSTALL") == "1":
        shadow_queues = [q for q in env.get("SG_CELERY_SHADOW_QUEUES", "").split(",") if q]
        shadowguard.install("celery", "redis", celery={"shadow_queues": shadow_queues})
    return make_app(
        env["SG_CELERY_BROKER"],
        env["SG_CELERY_QUEUE"],
        env["SG_CELERY_REDIS"],
        env["SG_CELERY_KEY"],
        mirror=env.get("SG_CELERY_MIRROR") or None,
        trail=env.get("SG_CELERY_TRAIL") or None,
    )


app = _from_environment()
