"""kafka-python producers on the Tansu broker: shadow sends store nothing, primary ones are stored.

The oracle is the broker (a reader from the beginning of the topic, see tests/peers/kafka.py).
Producers are created before ``install()`` on purpose: the guard is on the class.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka import KafkaProducer
from kafka.errors import IllegalStateError
from kafka.producer.future import FutureRecordMetadata, RecordMetadata
from kafka.serializer import Serializer

import shadowguard
from shadowguard import Kind
from shadowguard.contract import is_wrapped
from shadowguard.integrations import kafka_python as sink
from tests.integrations._support import installing, raising, shadow_and_primary_threads
from tests.peers.kafka import KafkaBroker

SINK = "kafka_python"


# ``serialize(topic, headers, data)`` in kafka-python 3, ``serialize(topic, data)`` in 2.
class JSON(Serializer):  # type: ignore[misc]
    def serialize(self, topic: str, *headers_and_data: Any) -> bytes:
        return json.dumps(headers_and_data[-1]).encode()


class Text(Serializer):  # type: ignore[misc]
    def serialize(self, topic: str, *headers_and_data: Any) -> Any:
        data = headers_and_data[-1]
        return data.encode() if isinstance(data, str) else data


def _producer(broker: KafkaBroker, **extra: Any) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=broker.bootstrap,
        value_serializer=JSON(),
        key_serializer=Text(),
        linger_ms=5,
        **extra,
    )


@contextlib.contextmanager
def _transactional(broker: KafkaBroker, name: str) -> Iterator[tuple[str, KafkaProducer]]:
    """A new topic and a transactional producer (id ``name-<topic>``), closed at the end."""
    topic = broker.create_topic()
    producer = _producer(broker, transactional_id=f"{name}-{topic}")
    try:
        yield topic, producer
    finally:
        producer.close(timeout=5)


@pytest.fixture
def producer(kafka_broker: KafkaBroker) -> Iterator[KafkaProducer]:
    """A producer created before ``install()``, with JSON values and text keys."""
    made = _producer(kafka_broker)
    yield made
    made.close(timeout=5)


def _orders(producer: KafkaProducer, topic: str, tag: str) -> list[Any]:
    """The application code under test: the same in shadow and in primary."""
    futures = [
        producer.send(topic, {"order": f"{tag}-{i}"}, key=f"k{i}", headers=[("src", b"t")])
        for i in range(3)
    ]
    producer.flush(10)
    return [f.get(10) for f in futures]


def test_shadow_sends_store_nothing_and_primary_sends_are_stored(
    producer: KafkaProducer, kafka_broker: KafkaBroker
) -> None:
    topic = kafka_broker.create_topic()
    with installing(sink):
        with shadowguard.shadow() as scope:
            shadow_results = _orders(producer, topic, "shadow")
        primary_results = _orders(producer, topic, "primary")
    assert kafka_broker.values(topic) == [
        json.dumps({"order": f"primary-{i}"}).encode() for i in range(3)
    ]
    assert [r.offset for r in primary_results] == [0, 1, 2]
    for i, result in enumerate(shadow_results):
        assert isinstance(result, RecordMetadata)
        assert (result.topic, result.partition, result.offset) == (topic, 0, -1)
        assert result.serialized_key_size == 2
        assert result.serialized_value_size == len(json.dumps({"order": f"shadow-{i}"}))
        assert result.serialized_header_size == primary_results[i].serialized_header_size
    assert [(s.kind, s.target, s.detail["key"]) for s in scope.suppressed] == [
        (Kind.KAFKA_PRODUCE, topic, f"k{i}") for i in range(3)
    ]


def test_shadow_future_runs_callbacks_and_errbacks_as_a_delivered_record(
    producer: KafkaProducer, kafka_broker: KafkaBroker
) -> None:
    topic = kafka_broker.create_topic()
    seen: list[Any] = []
    with installing(sink), shadowguard.shadow():
        future = producer.send(topic, {"a": 1}, timestamp_ms=1234)
        assert isinstance(future, FutureRecordMetadata)
        future.add_callback(seen.append).add_errback(lambda e: seen.append(("error", e)))
        assert future.is_done
        assert future.succeeded()
        assert future.get(0).timestamp == 1234
    assert len(seen) == 1
    assert seen[0].offset == -1
    assert kafka_broker.values(topic) == []


def test_shadow_raises_what_the_client_raises_and_records_the_attempt(
    kafka_broker: KafkaBroker,
) -> None:
    topic = kafka_broker.create_topic()
    small = _producer(kafka_broker, max_request_size=200)
    small.send(topic, {"warm": "metadata"}).get(10)
    cases: list[dict[str, Any]] = [
        {"value": {"big": "x" * 400}},
        {"value": None, "key": None},
        {"value": {}, "headers": {"h": b"v"}},
        {"value": {}, "headers": [("h", "not bytes")]},
        {"value": {}, "key": 3},  # the key serializer passes an int through
        {"value": {}, "partition": 7},  # the topic has one partition
        {"value": {}, "partition": -1},
    ]
    with installing(sink):
        for kwargs in cases:
            primary = _outcome(lambda kwargs=kwargs: small.send(topic, **kwargs))
            assert primary != "ok", kwargs
            with shadowguard.shadow() as scope:
                shadowed = _outcome(lambda kwargs=kwargs: small.send(topic, **kwargs))
            assert shadowed == primary, kwargs
            assert [type(s.error).__name__ for s in scope.suppressed] == [primary.split(":")[-1]], (
                kwargs
            )
        with shadowguard.shadow() as scope, pytest.raises(ValueError, match="illegal"):
            small.send("no spaces allowed", {})
        small.close(timeout=5)
        with shadowguard.shadow(), pytest.raises((IllegalStateError, AssertionError)):
            small.send(topic, {})
    assert kafka_broker.values(topic) == [b'{"warm": "metadata"}']


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    key=st.one_of(st.none(), st.binary(max_size=150)),
    value=st.one_of(st.none(), st.binary(max_size=150)),
    headers=st.lists(st.tuples(st.text(max_size=20), st.binary(max_size=40)), max_size=3),
)
def test_shadow_size_rule_matches_the_client_byte_for_byte(
    kafka_broker: KafkaBroker, key: bytes | None, value: bytes | None, headers: list[Any]
) -> None:
    """For generated records near ``max_request_size``, shadow fails exactly when primary fails."""
    producer = _SIZED.get(kafka_broker.bootstrap)
    if producer is None:
        producer = _SIZED[kafka_broker.bootstrap] = KafkaProducer(
            bootstrap_servers=kafka_broker.bootstrap, max_request_size=250, linger_ms=50
        )
        _SIZED["topic"] = kafka_broker.create_topic()
        producer.send(_SIZED["topic"], b"warm").get(10)
    topic = _SIZED["topic"]

    def send() -> Any:
        return producer.send(topic, value, key=key, headers=headers)

    with installing(sink):
        with shadowguard.shadow():
            shadow_outcome = _outcome(send)
        primary_outcome = _outcome(send)
    assert shadow_outcome == primary_outcome


def _outcome(send: Any) -> str:
    """What ``send()`` did: "ok", the error it raised, or "future:" and the error it returned."""
    try:
        future = send()
    except Exception as exc:
        return type(exc).__name__
    if future.is_done and future.failed():
        return f"future:{type(future.exception).__name__}"
    return "ok"


_SIZED: dict[str, Any] = {}


def test_threads_sharing_a_producer_keep_shadow_and_primary_apart(
    producer: KafkaProducer, kafka_broker: KafkaBroker
) -> None:
    topic = kafka_broker.create_topic()

    def send(shadow: bool, n: int, i: int) -> None:
        producer.send(topic, f"{'s' if shadow else 'p'}{n}-{i}")

    with installing(sink):
        errors = shadow_and_primary_threads(send, threads=6, calls=25)
        producer.flush(10)
    assert errors == []
    stored = sorted(json.loads(v or b"") for v in kafka_broker.values(topic))
    assert stored == sorted(f"p{n}-{i}" for n in (1, 3, 5) for i in range(25))


def test_shadow_transactions_reach_nothing_and_primary_ones_commit(
    kafka_broker: KafkaBroker,
) -> None:
    with _transactional(kafka_broker, "tx") as (topic, producer), installing(sink):
        with shadowguard.shadow() as scope:
            # A lazy application: the first transaction it sees is a mirrored one.
            producer.init_transactions()
            producer.begin_transaction()
            producer.send(topic, "shadow")
            producer.commit_transaction()
            producer.begin_transaction()
            producer.abort_transaction()
        # The init the shadow skipped is owed: this runs it first.
        producer.begin_transaction()
        producer.send(topic, "primary")
        producer.commit_transaction()
    assert kafka_broker.values(topic) == [b'"primary"']
    kinds = [(s.kind, s.detail["operation"]) for s in scope.suppressed]
    assert kinds == [
        (Kind.KAFKA_TRANSACTION, "init_transactions"),
        (Kind.KAFKA_TRANSACTION, "begin_transaction"),
        (Kind.KAFKA_PRODUCE, "send"),
        (Kind.KAFKA_TRANSACTION, "commit_transaction"),
        (Kind.KAFKA_TRANSACTION, "begin_transaction"),
        (Kind.KAFKA_TRANSACTION, "abort_transaction"),
    ]
    assert scope.suppressed[0].target == f"tx-{topic}"


def test_shadow_transaction_on_a_plain_producer_raises_as_the_client(
    producer: KafkaProducer,
) -> None:
    with installing(sink), shadowguard.shadow() as scope, pytest.raises(IllegalStateError):
        producer.begin_transaction()
    assert scope.suppressed[0].error is not None


def test_a_failing_serializer_fails_the_shadow_send_and_is_recorded(
    kafka_broker: KafkaBroker,
) -> None:
    class Broken(Serializer):  # type: ignore[misc]
        def serialize(self, topic: str, *headers_and_data: Any) -> bytes:
            raise RuntimeError("serializer down")

    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, value_serializer=Broken())
    topic = kafka_broker.create_topic()
    try:
        with (
            installing(sink),
            shadowguard.shadow() as scope,
            pytest.raises(RuntimeError, match="serializer down"),
        ):
            producer.send(topic, "x")
    finally:
        producer.close(timeout=5)
    assert isinstance(scope.suppressed[0].error, RuntimeError)
    assert kafka_broker.values(topic) == []


def test_shadow_process_sends_nothing_without_a_scope(
    producer: KafkaProducer, kafka_broker: KafkaBroker
) -> None:
    """``SHADOW_MODE``: every send is shadow, with or without a scope."""
    from shadowguard import _config

    topic = kafka_broker.create_topic()
    with installing(sink):
        _config.configure(mode="shadow")
        try:
            assert producer.send(topic, "x").get(1).offset == -1
        finally:
            _config.reset()
    assert kafka_broker.values(topic) == []


def test_uninstall_restores_the_client() -> None:
    originals = {n: vars(KafkaProducer)[n] for n in ("send", "commit_transaction")}
    with installing(sink):
        assert is_wrapped(KafkaProducer.send)
        with installing(sink):  # idempotent
            pass
    assert {n: vars(KafkaProducer)[n] for n in originals} == originals


class AppProducer(KafkaProducer):  # type: ignore[misc]
    """An application's subclass, defined before ``install()``, extending ``send``."""

    def send(self, topic: str, *args: Any, **kwargs: Any) -> Any:
        return super().send(topic, *args, **kwargs)


def test_a_subclass_defined_before_install_is_guarded(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.create_topic()
    producer = AppProducer(bootstrap_servers=kafka_broker.bootstrap)
    try:
        with installing(sink):
            with shadowguard.shadow() as scope:
                assert producer.send(topic, b"shadow").get(1).offset == -1
            assert producer.send(topic, b"primary").get(10).offset == 0
    finally:
        producer.close(timeout=5)
    assert kafka_broker.values(topic) == [b"primary"]
    assert len(scope.suppressed) == 1


def test_a_producer_made_in_shadow_sends_as_primary_afterwards(kafka_broker: KafkaBroker) -> None:
    """Nothing of the shadow request sticks to an object that outlives it."""
    topic = kafka_broker.create_topic()
    with installing(sink):
        with shadowguard.shadow():
            producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
            shadow_future = producer.send(topic, b"shadow")
        try:
            assert producer.send(topic, b"primary").get(10).offset == 0
        finally:
            producer.close(timeout=5)
    assert shadow_future.get(0).offset == -1
    assert kafka_broker.values(topic) == [b"primary"]


def test_a_fault_inside_the_guard_fails_closed_and_primary_is_untouched(
    producer: KafkaProducer, kafka_broker: KafkaBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shadow send whose checks break raises; nothing is sent; primary sends still go out."""
    topic = kafka_broker.create_topic()
    with installing(sink):
        producer.send(topic, "primary-1").get(10)
        monkeypatch.setattr(producer, "_estimate_size_in_bytes", raising("size estimate broke"))
        with shadowguard.shadow() as scope, pytest.raises(RuntimeError, match="broke"):
            producer.send(topic, "shadow")
        monkeypatch.undo()
        producer.send(topic, "primary-2").get(10)
    assert [json.loads(v or b"") for v in kafka_broker.values(topic)] == ["primary-1", "primary-2"]
    assert isinstance(scope.suppressed[0].error, RuntimeError)


def test_a_malformed_shadow_group_suffix_fails_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from shadowguard import _config
    from shadowguard.errors import ConfigError

    monkeypatch.setenv("SHADOWGUARD_KAFKA_SHADOW_GROUP_SUFFIX", "")
    _config.reset()
    try:
        with pytest.raises(ConfigError, match="SHADOWGUARD_KAFKA_SHADOW_GROUP_SUFFIX"):
            sink.install()
    finally:
        _config.reset()
    assert not is_wrapped(KafkaProducer.send)


def test_a_shadow_request_cannot_commit_or_abort_the_primarys_open_transaction(
    kafka_broker: KafkaBroker,
) -> None:
    """One shared transactional producer: primary opens, shadow commits and aborts, primary goes on."""
    with _transactional(kafka_broker, "shared") as (topic, producer), installing(sink):
        producer.init_transactions()
        producer.begin_transaction()
        producer.send(topic, "primary-1")
        with shadowguard.shadow():
            producer.send(topic, "shadow")
            producer.commit_transaction()
            producer.abort_transaction()
        producer.send(topic, "primary-2")
        producer.commit_transaction()
    assert [json.loads(v or b"") for v in kafka_broker.values(topic)] == ["primary-1", "primary-2"]
