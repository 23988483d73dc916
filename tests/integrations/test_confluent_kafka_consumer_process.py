"""A ``SHADOW_MODE=true`` worker beside the primary's: it reads everything, in a group of its own.

The shadow worker runs in a subprocess (process shadow is process-wide), the primary
consumer in the test. The oracles are the Tansu broker's committed offsets per group, read
from outside, and the primary consumer's own assignment and rebalance callbacks.
(Tansu answers DescribeGroups without members, so group membership cannot be read there.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.peers.kafka import KafkaBroker
from tests.peers.processes import stop_process

SINK = "confluent_kafka"
ROOT = Path(__file__).resolve().parents[2]
SESSION = {"session.timeout.ms": 2000, "heartbeat.interval.ms": 400}


def run_worker(
    broker: KafkaBroker, topic: str, group: str, shadow: str, *extra: str
) -> subprocess.Popen[str]:
    env = {**os.environ, "SHADOW_MODE": shadow, "PYTHONPATH": str(ROOT)}
    env.pop("SHADOWGUARD_KAFKA_SHADOW_GROUP_SUFFIX", None)
    command = [sys.executable, "-m", "tests.integrations._shadow_worker"]
    return subprocess.Popen(
        [*command, broker.bootstrap, topic, group, "10", *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class PrimaryConsumer:
    """The primary's consumer in ``group``: what it read and every rebalance it saw."""

    def __init__(self, broker: KafkaBroker, topic: str, group: str) -> None:
        self.messages: list[str] = []
        self.events: list[tuple[str, list[int]]] = []
        self.consumer = Consumer(
            {
                "bootstrap.servers": broker.bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                **SESSION,
            }
        )
        self.consumer.subscribe(
            [topic],
            on_assign=lambda _, parts: self.events.append(("assign", _numbers(parts))),
            on_revoke=lambda _, parts: self.events.append(("revoke", _numbers(parts))),
        )

    def poll_until(self, done: Any, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not done() and time.monotonic() < deadline:
            message = self.consumer.poll(0.1)
            if message is not None and message.error() is None:
                self.messages.append(bytes(message.value() or b"").decode())


def _numbers(partitions: list[TopicPartition]) -> list[int]:
    return sorted(tp.partition for tp in partitions)


@pytest.fixture
def primary(kafka_broker: KafkaBroker) -> Iterator[tuple[PrimaryConsumer, str, str]]:
    """A two-partition topic of ten messages, read and committed by the primary's group."""
    topic = kafka_broker.create_topic(partitions=2)
    producer = Producer(kafka_broker.config())
    for i in range(10):
        producer.produce(topic, f"m{i}".encode(), key=str(i))
    assert producer.flush(10) == 0
    group = f"orders-{uuid.uuid4().hex[:8]}"
    consumer = PrimaryConsumer(kafka_broker, topic, group)
    try:
        consumer.poll_until(lambda: len(consumer.messages) == 10, 15)
        assert sorted(consumer.messages) == [f"m{i}" for i in range(10)]
        consumer.consumer.commit(asynchronous=False)
        yield consumer, topic, group
    finally:
        consumer.consumer.close()


def _watch(primary: PrimaryConsumer, worker: subprocess.Popen[str]) -> dict[str, Any]:
    """Keep the primary polling (it must hold its partitions) until the worker is done."""
    try:
        primary.poll_until(lambda: worker.poll() is not None, 25)
        out, err = worker.communicate(timeout=5)
    finally:
        stop_process(worker, timeout=2)
    assert worker.returncode == 0, err
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


@pytest.mark.usefixtures("installed")
def test_shadow_worker_reads_every_message_in_a_group_of_its_own(
    kafka_broker: KafkaBroker, primary: tuple[PrimaryConsumer, str, str]
) -> None:
    """Same code, same group.id: the shadow reads all, commits to orders-…-shadow, takes nothing."""
    consumer, topic, group = primary
    before = kafka_broker.committed(group, topic, 2)
    assert sum(before.values()) == 10
    started = time.monotonic()
    result = _watch(consumer, run_worker(kafka_broker, topic, group, "true", "tx", "static"))
    assert time.monotonic() - started < 20
    assert result["shadow"] is True
    assert result["seen"] == [f"m{i}" for i in range(10)]
    assert result["assignment"] == [0, 1]
    # The primary kept both partitions throughout: one assignment, never a revocation.
    assert consumer.events == [("assign", [0, 1])]
    assert _numbers(consumer.consumer.assignment()) == [0, 1]
    # Its committed offsets are untouched; the shadow's store_offsets + auto-commit and its
    # send_offsets_to_transaction landed in the shadow group only (the latter: nowhere).
    assert kafka_broker.committed(group, topic, 2) == before
    assert kafka_broker.committed(f"{group}-shadow", topic, 2) == before
    assert result["suppressed"] == [
        ["kafka.transaction", "init_transactions"],
        ["kafka.transaction", "begin_transaction"],
        ["kafka.produce", "produce"],
        ["kafka.transaction", "send_offsets_to_transaction"],
        ["kafka.transaction", "commit_transaction"],
    ]


@pytest.mark.usefixtures("installed")
def test_the_same_worker_as_primary_takes_the_group_over(
    kafka_broker: KafkaBroker, primary: tuple[PrimaryConsumer, str, str]
) -> None:
    """The control: without SHADOW_MODE the worker joins the primary's group and rebalances it."""
    consumer, topic, group = primary
    _watch(consumer, run_worker(kafka_broker, topic, group, "false"))
    assert ("revoke", [0, 1]) in consumer.events
    assert kafka_broker.committed(f"{group}-shadow", topic, 2) == {0: -1001, 1: -1001}
