"""``--shadowguard-audit`` on a suite that publishes to RabbitMQ: counted per test, nothing queued."""

from __future__ import annotations

import pytest

from tests.peers.rabbitmq import RabbitPeer

pytest_plugins = ["pytester"]

CONFTEST = """
import pytest
import shadowguard


@pytest.fixture(scope="session", autouse=True)
def guards():
    shadowguard.install("pika")
    yield
    shadowguard.uninstall("pika")
"""

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
    pytester.makeconftest(CONFTEST)
    # pika's I/O loop makes its wake-up socket pair by connecting to a port of its own on
    # 127.0.0.1, so the whole loopback host is allowed, not only the broker's port.
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        f"shadowguard_allow_hosts = {rabbit.host}\n"
    )
    pytester.makepyfile(test_inner=TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "--shadowguard-audit", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "1 test(s) ran as shadow traffic, 0 leaked (audit: *)",
            "suppressed by guards in test_inner.py::test_places_an_order: amqp.publish=1",
        ]
    )
    assert rabbit.depth(queue) == 0
