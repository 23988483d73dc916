"""The Kafka capture sink on a real broker (Tansu): keyed records, drops counted, never
suppressed in shadow, fork safety; its URL checked at start-up."""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import time
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shadowguard import ConfigError, _config, capture, integrations
from shadowguard.capture import Capture, CaptureSettings, _kafka, _writer
from shadowguard.capture_format import SCHEMA_VERSION, decode
from shadowguard.contract import Bursts
from shadowguard.middleware.asgi import ShadowGuardMiddleware
from tests.capture._support import drive, dropped_counts, json_app
from tests.integrations._support import installing
from tests.peers.kafka import KafkaBroker, start_broker
from tests.peers.processes import stop_process

pytestmark = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded:DeprecationWarning"
)

SHADOW = (b"x-shadow-request", b"1")


@pytest.fixture(autouse=True)
def _fresh_bursts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_writer._state, "bursts", Bursts())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rid(value: str) -> tuple[bytes, bytes]:
    return (b"x-request-id", value.encode())


def _stored(broker: KafkaBroker, topic: str, count: int, timeout: float = 30) -> list[Any]:
    """The topic's messages once there are ``count`` (read from the beginning)."""
    deadline = time.monotonic() + timeout
    while True:
        found = broker.messages(topic, idle=0.5)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        capture.flush(5)


def test_records_are_keyed_by_request_id_and_pairs_share_a_partition(
    kafka_broker: KafkaBroker,
) -> None:
    topic = kafka_broker.create_topic("cap", partitions=4)
    app = ShadowGuardMiddleware(
        json_app, capture=f"kafka://{kafka_broker.bootstrap}/{topic}?linger.ms=5"
    )
    ids = [f"req-{i}" for i in range(12)]
    for rid in ids:
        drive(app, _rid(rid))
        drive(app, _rid(rid), SHADOW)
    assert capture.close(30)  # flushes the producer
    messages = _stored(kafka_broker, topic, 2 * len(ids))
    assert len(messages) == 2 * len(ids)
    partitions: dict[str, set[int]] = {}
    labels: dict[str, list[str]] = {}
    for message in messages:
        record = decode(message.value())
        assert message.key() == record["request_id"].encode()
        assert dict(message.headers()) == {
            "shadowguard-schema": str(SCHEMA_VERSION).encode(),
            "shadowguard-label": record["label"].encode(),
        }
        partitions.setdefault(record["request_id"], set()).add(message.partition())
        labels.setdefault(record["request_id"], []).append(record["label"])
    assert set(partitions) == set(ids)
    assert all(len(p) == 1 for p in partitions.values()), partitions
    assert len(set().union(*partitions.values())) > 1  # the ids spread over partitions
    assert all(sorted(found) == ["primary", "shadow"] for found in labels.values())


def test_a_broker_that_is_down_costs_requests_nothing_and_drops_are_counted(
    metric_reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"kafka://127.0.0.1:{_free_port()}/nowhere?message.timeout.ms=300"
    app = ShadowGuardMiddleware(json_app, capture=url)
    before = dropped_counts(metric_reader)
    with caplog.at_level(logging.WARNING, logger="shadowguard.capture"):
        started = time.perf_counter()
        for i in range(50):
            drive(app, _rid(f"down-{i}"))
        elapsed = time.perf_counter() - started
        assert capture.flush(10)
        time.sleep(0.5)  # past message.timeout.ms: the reports come with the next poll
        assert capture.close(10)
    # A broker that never answers would cost 300 ms per record if a request waited for it.
    assert elapsed < 5, elapsed
    after = dropped_counts(metric_reader)
    assert after["kafka_delivery"] - before["kafka_delivery"] == 50
    assert after["kafka_unsent_at_close"] == before["kafka_unsent_at_close"]
    lines = [r.getMessage() for r in caplog.records if "reason=kafka_delivery" in r.getMessage()]
    assert len(lines) == 1, lines  # one line per burst
    assert "nowhere" in lines[0]
    broker_lines = [r for r in caplog.records if "further broker errors" in r.getMessage()]
    assert len(broker_lines) <= 1, broker_lines


def test_a_full_local_queue_drops_the_rest_and_close_counts_the_unsent(
    metric_reader: InMemoryMetricReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(_kafka.PRODUCER_CONFIG, "queue.buffering.max.messages", 5)
    monkeypatch.setattr(_kafka, "CLOSE_TIMEOUT_SECONDS", 0.2)
    app = ShadowGuardMiddleware(json_app, capture=f"kafka://127.0.0.1:{_free_port()}/full")
    before = dropped_counts(metric_reader)
    for i in range(20):
        drive(app, _rid(f"full-{i}"))
    assert capture.close(10)
    after = dropped_counts(metric_reader)
    assert after["kafka_queue_full"] - before["kafka_queue_full"] == 15
    assert after["kafka_unsent_at_close"] - before["kafka_unsent_at_close"] == 5


def test_a_broker_stopped_mid_run(metric_reader: InMemoryMetricReader) -> None:
    """Records sent before the stop arrive; those after it are dropped and counted."""
    broker, process = start_broker()
    try:
        topic = broker.create_topic("mid")
        url = f"kafka://{broker.bootstrap}/{topic}?linger.ms=0&message.timeout.ms=3000"
        app = ShadowGuardMiddleware(json_app, capture=url)
        for i in range(5):
            drive(app, _rid(f"before-{i}"))
        assert len(_stored(broker, topic, 5)) == 5
    finally:
        stop_process(process, timeout=5)
    before = dropped_counts(metric_reader)
    started = time.perf_counter()
    for i in range(5):
        drive(app, _rid(f"after-{i}"))
    assert time.perf_counter() - started < 5
    assert capture.flush(10)
    time.sleep(1)
    assert capture.close(10)
    after = dropped_counts(metric_reader)
    lost = sum(after[r] - before[r] for r in ("kafka_delivery", "kafka_unsent_at_close"))
    assert lost == 5


def test_shadow_mode_records_arrive_while_the_application_produce_is_suppressed(
    kafka_broker: KafkaBroker,
) -> None:
    """In a SHADOW_MODE process with the confluent_kafka guard installed, the capture
    records reach the broker: the guard's own channel; the application's messages do not."""
    import confluent_kafka
    from confluent_kafka import cimpl

    from shadowguard import ShadowSideEffectBlocked

    records_topic = kafka_broker.create_topic("cap-shadow", partitions=2)
    app_topic = kafka_broker.create_topic("orders")
    unguarded = cimpl.Producer(kafka_broker.config())  # made before install(): refuses
    refused: list[str] = []
    with installing(integrations.load("confluent_kafka")):
        guarded = confluent_kafka.Producer(kafka_broker.config())
        _config.configure(mode="shadow")  # the whole process is shadow
        try:

            async def application(scope: Any, receive: Any, send: Any) -> None:
                guarded.produce(app_topic, b"order")
                guarded.flush(5)
                try:
                    unguarded.produce(app_topic, b"order")
                except ShadowSideEffectBlocked:
                    refused.append("unguarded")
                await json_app(scope, receive, send)

            url = f"kafka://{kafka_broker.bootstrap}/{records_topic}?linger.ms=5"
            app = ShadowGuardMiddleware(application, capture=url)
            for i in range(3):
                drive(app, _rid(f"shadow-{i}"))
            assert capture.close(30)
        finally:
            _config.reset()
    records = [decode(m.value()) for m in _stored(kafka_broker, records_topic, 3)]
    found = sorted((r["request_id"], r["label"]) for r in records)
    assert found == [(f"shadow-{i}", "shadow") for i in range(3)]
    # Each request's two produce() calls: the guarded one suppressed, the other refused.
    assert [r["suppressions"] for r in records] == [{"kafka.produce": 2}] * 3
    assert refused == ["unguarded"] * 3
    assert kafka_broker.messages(app_topic, idle=0.5) == []


def test_a_fatal_producer_error_opens_a_new_producer(kafka_broker: KafkaBroker) -> None:
    from confluent_kafka import KafkaError

    topic = kafka_broker.create_topic("cap-fatal")
    app = ShadowGuardMiddleware(json_app, capture=f"kafka://{kafka_broker.bootstrap}/{topic}")
    drive(app, _rid("before"))
    assert capture.flush(10)
    (sink,) = _writer._state.sinks.values()
    assert isinstance(sink, _kafka.KafkaSink)
    first = sink._producer
    # As librdkafka reports it through error_cb (no broker makes an idempotent producer
    # fail fatally on request).
    sink._on_error(KafkaError(KafkaError._FATAL, "test", fatal=True))
    drive(app, _rid("after"))
    assert capture.flush(10)
    assert sink._producer is not None
    assert sink._producer is not first
    assert capture.close(30)
    ids = sorted(decode(m.value())["request_id"] for m in _stored(kafka_broker, topic, 2))
    assert ids == ["after", "before"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_produces_through_its_own_producer(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.create_topic("cap-fork")
    app = ShadowGuardMiddleware(json_app, capture=f"kafka://{kafka_broker.bootstrap}/{topic}")
    drive(app, _rid("parent-1"))
    assert capture.flush(10)  # the parent's producer is open
    pid = os.fork()
    if pid == 0:  # the child: only os._exit leaves it
        status = 1
        try:
            drive(app, _rid("child"))
            status = 0 if capture.close(20) else 2
        finally:
            os._exit(status)
    deadline = time.monotonic() + 60
    while (done := os.waitpid(pid, os.WNOHANG)) == (0, 0):
        assert time.monotonic() < deadline, "the forked child hung"
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(done[1]) == 0
    drive(app, _rid("parent-2"))
    assert capture.close(30)
    ids = sorted(decode(m.value())["request_id"] for m in _stored(kafka_broker, topic, 3))
    assert ids == ["child", "parent-1", "parent-2"]


@pytest.mark.parametrize(
    "url",
    [
        "kafka://",
        "kafka://host/",
        "kafka://host/topic",
        "kafka://host:9092/",
        "kafka://host:9092",
        "kafka://host:0/t",
        "kafka://host:65536/t",
        "kafka://host:port/t",
        "kafka://host:9092/bad topic",
        "kafka://host:9092/a/b",
        "kafka://host:9092/..",
        "kafka://host:9092/t?",
        "kafka://host:9092/t?acks=0",
        "kafka://host:9092/t?linger.ms=-1",
        "kafka://host:9092/t?message.timeout.ms=0",
        "kafka://host:9092/t?compression.type=brotli",
        "kafka://host:9092/t?linger.ms=1&linger.ms=2",
        "kafka://host:9092/t?linger.ms=500&message.timeout.ms=500",
        "kafka://host:9092/t?message.timeout.ms=50",
        "kafka://host:9092/t?linger.ms=40000",
        "kafka://host:9092/t#frag",
        "kafka://user@host:9092/t",
        "kafka://host:9092,/t",
    ],
)
def test_a_malformed_url_stops_start_up(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOWGUARD_CAPTURE", url)
    with pytest.raises(ConfigError, match=r"SHADOWGUARD_CAPTURE=.* accepted values are .*kafka://"):
        ShadowGuardMiddleware(json_app)
    with pytest.raises(ConfigError, match="kafka://HOST:PORT"):
        CaptureSettings(url=url)
    with pytest.raises(ConfigError, match="capture="):
        ShadowGuardMiddleware(json_app, capture=url)


def test_accepted_urls() -> None:
    settings = CaptureSettings(
        url="kafka://a.example:9092,[::1]:9093/cap.v1_x-y?message.timeout.ms=1000&linger.ms=0"
    )
    assert settings.scheme == "kafka"
    assert (
        settings.path == "a.example:9092,[::1]:9093/cap.v1_x-y?linger.ms=0&message.timeout.ms=1000"
    )


def test_a_missing_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "confluent_kafka" else real(name, *a),
    )
    with pytest.raises(ImportError, match=r"shadowguard\[kafka\]"):
        Capture(CaptureSettings(url="kafka://127.0.0.1:9092/t"))


def test_read_records_says_a_topic_is_read_by_consuming_it() -> None:
    with pytest.raises(ConfigError, match="consuming its topic"):
        capture.read_records("kafka://127.0.0.1:9092/t")
