"""``--shadowguard-audit`` on a suite that publishes to RabbitMQ: counted per test, nothing queued."""

from __future__ import annotations

import pytest

from tests.peers.rabbitmq import RabbitPeer
from tests.pytest_plugin._audit import guards_conftest, run_audit

pytest_plugins = ["pytester"]

TESTS = """
import os

import pika


def test_places_an_order():
    params = pika.ConnectionParameters(os.environ["SG_RABBIT_HOST"], int(os.environ["SG_RABBIT_PORT"]))
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_publish("", os.environ["SG_RABBIT_QUEUE"], b"order")
    connection.close()
"""


def test_audit_counts_amqp_publishes_and_the_queue_stays_empty(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, rabbit: RabbitPeer
) -> None:
    queue = rabbit.queue("audit")
    monkeypatch.setenv("SG_RABBIT_HOST", rabbit.host)
    monkeypatch.setenv("SG_RABBIT_PORT", str(rabbit.port))
    monkeypatch.setenv("SG_RABBIT_QUEUE", queue)
    # pika's I/O loop makes its wake-up socket pair by connecting to a port of its own on
    # 127.0.0.1, so the whole loopback host is allowed, not only the broker's port.
    run_audit(
        pytester,
        TESTS,
        guards_conftest("pika"),
        allow_hosts=rabbit.host,
        suppressed={"test_places_an_order": "amqp.publish=1"},
    )
    assert rabbit.depth(queue) == 0
