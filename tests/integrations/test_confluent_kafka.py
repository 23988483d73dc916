"""confluent-kafka guard: shadow messages never reach the broker, primary ones all do.

The oracle is the Tansu broker of the session (tests/peers/kafka.py): a consumer reads
the topic from the beginning after the producer flushed.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import confluent_kafka
import pytest
from confluent_kafka import KafkaError, KafkaException
from hypothesis import given, settings
from hypothesis import strategies as st

import shadowguard
from shadowguard import is_shadow, shadow
from shadowguard.integrations import confluent_kafka as guard_module
from tests.integrations._support import installing
from tests.peers.kafka import KafkaBroker


@pytest.fixture
def installed() -> Iterator[None]:
    with installing(guard_module):
        yield


@pytest.fixture
def topic(kafka_broker: KafkaBroker) -> str:
    return kafka_broker.create_topic()


class Reports:
    """Delivery callbacks: what each one saw, and whether it ran as shadow."""

    def __init__(self) -> None:
        self.seen: list[tuple[bool, KafkaError | None, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, error: KafkaError | None, message: Any) -> None:
        with self.lock:
            self.seen.append((is_shadow(), error, message))

    def values(self, *, shadow_only: bool | None = None) -> list[bytes]:
        return [m.value() for s, _, m in self.seen if shadow_only is None or s is shadow_only]


def stored(broker: KafkaBroker, topic: str) -> list[bytes | None]:
    return [m.value() for m in broker.messages(topic)]


def produce_orders(producer: Any, topic: str, tag: str, callback: Reports) -> None:
    """The application code under test: the same in shadow and in primary."""
    for i in range(3):
        producer.produce(
            topic,
            value=f"{tag}-{i}".encode(),
            key=f"k{i}",
            headers={"source": b"test"},
            on_delivery=callback,
        )
    producer.flush(10)


def test_install_swaps_classes_and_uninstall_restores() -> None:
    originals = (confluent_kafka.Producer, confluent_kafka.SerializingProducer)
    shadowguard.install("confluent_kafka")
    try:
        shadowguard.install("confluent_kafka")
        assert confluent_kafka.Producer is guard_module.GuardedProducer
        assert confluent_kafka.SerializingProducer is guard_module.GuardedSerializingProducer
        from confluent_kafka import aio

        assert aio.AIOProducer is guard_module.GuardedAIOProducer
        assert aio.AsyncSerializingProducer is guard_module.GuardedAsyncSerializingProducer
    finally:
        shadowguard.uninstall()
    assert (confluent_kafka.Producer, confluent_kafka.SerializingProducer) == originals


def test_isinstance_keeps_working_for_producers_created_before_install() -> None:
    from confluent_kafka.aio import AIOProducer

    raw = confluent_kafka.Producer({"bootstrap.servers": "127.0.0.1:9"})
    raw_sp = confluent_kafka.SerializingProducer({"bootstrap.servers": "127.0.0.1:9"})
    with_install = guard_module.GuardedSerializingProducer({"bootstrap.servers": "127.0.0.1:9"})
    shadowguard.install("confluent_kafka")
    try:
        assert isinstance(raw, confluent_kafka.Producer)
        assert isinstance(raw_sp, confluent_kafka.Producer)
        assert isinstance(raw_sp, confluent_kafka.SerializingProducer)
        assert not isinstance(raw, confluent_kafka.SerializingProducer)
        assert isinstance(with_install, confluent_kafka.cimpl.Producer)
        assert issubclass(confluent_kafka.cimpl.Producer, confluent_kafka.Producer)
        assert issubclass(guard_module.GuardedAIOProducer, AIOProducer)

        class Custom(confluent_kafka.Producer):
            pass

        assert not isinstance(raw, Custom)
        assert guard_module.guard(raw) is not raw
        assert guard_module.guard(with_install) is with_install
    finally:
        shadowguard.uninstall()
    from confluent_kafka import aio

    assert aio.AIOProducer.__module__.startswith("confluent_kafka")


@pytest.mark.usefixtures("installed")
def test_shadow_produce_reaches_no_broker_and_primary_does(
    kafka_broker: KafkaBroker, topic: str
) -> None:
    """Shadow: callbacks once per message, as shadow, nothing stored. Primary: all stored."""
    producer = confluent_kafka.Producer(kafka_broker.config())
    assert isinstance(producer, confluent_kafka.cimpl.Producer)
    reports = Reports()
    with shadow("test") as scope:
        produce_orders(producer, topic, "shadow", reports)
        assert len(producer) == 0
    assert [(s, e) for s, e, _ in reports.seen] == [(True, None)] * 3
    message = reports.seen[0][2]
    assert isinstance(message, confluent_kafka.Message)
    assert (message.topic(), message.key(), message.value()) == (topic, b"k0", b"shadow-0")
    assert message.timestamp()[0] == confluent_kafka.TIMESTAMP_CREATE_TIME
    assert scope.counts["kafka.produce"] == 3
    assert scope.suppressed[0].target == topic
    assert scope.suppressed[0].detail["headers_bytes"] == len(b"source") + len(b"test") + 2

    produce_orders(producer, topic, "primary", reports)
    assert reports.values(shadow_only=False) == [b"primary-0", b"primary-1", b"primary-2"]
    assert stored(kafka_broker, topic) == [b"primary-0", b"primary-1", b"primary-2"]


@pytest.mark.usefixtures("installed")
def test_callbacks_wait_for_poll_and_len_counts_only_real_messages(
    kafka_broker: KafkaBroker, topic: str
) -> None:
    producer = confluent_kafka.Producer(kafka_broker.config(**{"linger.ms": 1000}))
    reports = Reports()
    producer.produce(topic, b"primary", on_delivery=reports)
    with shadow():
        producer.produce(topic, b"shadow", on_delivery=reports)
        assert reports.seen == []
        assert len(producer) == 1
    assert producer.poll(0) == 0  # the shadow report is served, not counted for a primary
    assert reports.values(shadow_only=True) == [b"shadow"]
    assert producer.flush(10) == 0
    assert sorted(reports.values()) == [b"primary", b"shadow"]


@pytest.mark.usefixtures("installed")
def test_primary_callbacks_served_from_a_shadow_poll_run_as_primary(
    kafka_broker: KafkaBroker, topic: str
) -> None:
    producer = confluent_kafka.Producer(kafka_broker.config())
    reports = Reports()
    producer.produce(topic, b"primary", on_delivery=reports)
    with shadow():
        producer.produce(topic, b"shadow", on_delivery=reports)
        assert producer.flush(10) == 0
    assert sorted((v, s) for s, _, m in reports.seen for v in [m.value()]) == [
        (b"primary", False),
        (b"shadow", True),
    ]
    assert stored(kafka_broker, topic) == [b"primary"]


def _failing(error: KafkaError | None, message: Any) -> None:
    raise RuntimeError("shadow callback failed")


@pytest.mark.parametrize("how", ["install", "guard"])
def test_primary_poll_and_flush_are_not_changed_by_shadow_reports(
    kafka_broker: KafkaBroker, topic: str, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A primary poll() keeps its timeout and count; a failing shadow callback is logged."""
    if how == "install":
        guard_module.install()
        producer = confluent_kafka.Producer(kafka_broker.config())
    else:
        producer = guard_module.guard(confluent_kafka.Producer(kafka_broker.config()))
    try:
        reports = Reports()
        with shadow():
            producer.produce(topic, b"shadow-1", on_delivery=reports)
        started = time.monotonic()
        assert producer.poll(0.3) == 0
        assert time.monotonic() - started >= 0.25
        assert reports.values(shadow_only=True) == [b"shadow-1"]

        with shadow():
            producer.produce(topic, b"shadow-2", on_delivery=_failing)
        with caplog.at_level(logging.ERROR, logger="shadowguard"):
            assert producer.poll(0) == 0
        assert "shadow delivery callback failed" in caplog.text
        assert "shadow callback failed" in caplog.text

        with shadow():
            producer.produce(topic, b"shadow-3", on_delivery=_failing)
        producer.produce(topic, b"primary", on_delivery=reports)
        assert producer.flush(10) == 0
        assert reports.values(shadow_only=False) == [b"primary"]

        with shadow():  # shadow code polling sees its own callback's error, as unguarded
            producer.produce(topic, b"shadow-4", on_delivery=_failing)
            with pytest.raises(RuntimeError, match="shadow callback failed"):
                producer.poll(0)
    finally:
        guard_module.uninstall()
    assert stored(kafka_broker, topic) == [b"primary"]


@pytest.mark.usefixtures("installed")
def test_serializing_producer_runs_serializers_in_shadow(
    kafka_broker: KafkaBroker, topic: str
) -> None:
    calls: list[tuple[str, Any, Any, bool]] = []

    def to_json(obj: Any, ctx: Any) -> bytes:
        calls.append((ctx.topic, ctx.field, ctx.headers, is_shadow()))
        return json.dumps(obj, sort_keys=True).encode()

    producer = confluent_kafka.SerializingProducer(
        kafka_broker.config(**{"key.serializer": to_json, "value.serializer": to_json})
    )
    reports = Reports()

    def place(order: int) -> None:
        producer.produce(
            topic,
            key={"id": order},
            value={"order": order},
            headers=[("v", b"1")],
            on_delivery=reports,
        )
        producer.flush(10)

    with shadow():
        place(1)
        with pytest.raises(confluent_kafka.error.ValueSerializationError):
            producer.produce(topic, value=object())
    assert calls[:2] == [
        (topic, "key", [("v", b"1")], True),
        (topic, "value", [("v", b"1")], True),
    ]
    assert [(s, m.key(), m.value()) for s, _, m in reports.seen] == [
        (True, b'{"id": 1}', b'{"order": 1}')
    ]
    place(2)
    assert stored(kafka_broker, topic) == [b'{"order": 2}']


@pytest.mark.usefixtures("installed")
def test_produce_batch(kafka_broker: KafkaBroker, topic: str) -> None:
    producer = confluent_kafka.Producer(kafka_broker.config())
    batch_reports, own_reports = Reports(), Reports()

    def send(tag: str) -> int:
        messages: list[dict[str, Any]] = [
            {"value": f"{tag}-a".encode()},
            {"value": f"{tag}-b", "key": "k", "callback": own_reports},
            {"value": b"x" * 2_000_000},
        ]
        queued = producer.produce_batch(topic, messages, on_delivery=batch_reports)
        assert messages[2]["_error"].code() == KafkaError.MSG_SIZE_TOO_LARGE
        assert "_error" not in messages[0]
        producer.flush(10)
        return queued

    with shadow():
        assert send("shadow") == 2
    assert batch_reports.values(shadow_only=True) == [b"shadow-a"]
    assert own_reports.values(shadow_only=True) == [b"shadow-b"]
    assert send("primary") == 2
    assert batch_reports.values(shadow_only=False) == [b"primary-a"]
    assert stored(kafka_broker, topic) == [b"primary-a", b"primary-b"]


@pytest.mark.usefixtures("installed")
def test_transactions_never_reach_the_broker(kafka_broker: KafkaBroker, topic: str) -> None:
    """A shadow producer with the primary's transactional.id does not fence the primary."""
    transactional_id = f"tx-{topic}"
    config = kafka_broker.config(**{"transactional.id": transactional_id})
    primary = confluent_kafka.Producer(config)
    primary.init_transactions(10)
    primary.begin_transaction()
    primary.produce(topic, b"primary-open")

    def transfer(producer: Any, tag: str) -> None:
        producer.init_transactions(10)
        producer.begin_transaction()
        producer.produce(topic, f"{tag}-1".encode())
        producer.produce(topic, f"{tag}-2".encode())
        producer.commit_transaction(10)

    shadow_producer = confluent_kafka.Producer(config)
    with shadow() as scope:
        transfer(shadow_producer, "shadow")
        shadow_producer.abort_transaction(10)
    assert [s.detail["operation"] for s in scope.suppressed] == [
        "init_transactions",
        "begin_transaction",
        "produce",
        "produce",
        "commit_transaction",
        "abort_transaction",
    ]
    assert scope.suppressed[0].target == transactional_id
    primary.commit_transaction(10)  # raises if the shadow producer had fenced it
    assert stored(kafka_broker, topic) == [b"primary-open"]

    transfer(shadow_producer, "primary")  # the same code as primary fences the old producer
    assert stored(kafka_broker, topic) == [b"primary-open", b"primary-1", b"primary-2"]


@pytest.mark.usefixtures("installed")
def test_purge_in_shadow_keeps_primary_messages(kafka_broker: KafkaBroker, topic: str) -> None:
    producer = confluent_kafka.Producer(kafka_broker.config(**{"linger.ms": 500}))
    reports = Reports()
    producer.produce(topic, b"primary", on_delivery=reports)
    with shadow():
        producer.produce(topic, b"shadow", on_delivery=reports)
        producer.purge()
    producer.flush(10)
    errors = {m.value(): e for _, e, m in reports.seen}
    assert errors[b"primary"] is None
    purged = errors[b"shadow"]
    assert purged is not None
    assert purged.code() == KafkaError._PURGE_QUEUE
    assert stored(kafka_broker, topic) == [b"primary"]


def invalid_calls(topic: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("too large", {"topic": topic, "value": b"x" * 965}),
        (
            "too large with headers",
            {"topic": topic, "value": b"x" * 950, "headers": {"h": b"x" * 20}},
        ),
        ("topic not str", {"topic": 1, "value": b"x"}),
        ("value int", {"topic": topic, "value": 3}),
        ("value bytearray", {"topic": topic, "value": bytearray(b"x")}),
        ("header value int", {"topic": topic, "headers": {"a": 1}}),
        ("headers not a list", {"topic": topic, "headers": "a=b"}),
        ("header not a pair", {"topic": topic, "headers": [("a",)]}),
        ("partition str", {"topic": topic, "partition": "0"}),
        ("unknown argument", {"topic": topic, "colour": "red"}),
    ]


@pytest.mark.usefixtures("installed")
def test_invalid_messages_raise_alike_in_shadow_and_primary(
    kafka_broker: KafkaBroker, topic: str
) -> None:
    producer = confluent_kafka.Producer(kafka_broker.config(**{"message.max.bytes": 1000}))
    for label, kwargs in invalid_calls(topic):
        with pytest.raises((TypeError, KafkaException)) as primary:
            producer.produce(**kwargs)
        with shadow() as scope, pytest.raises(type(primary.value)) as shadowed:
            producer.produce(**kwargs)
        # A call the signature refuses never reaches the guard; anything else is recorded.
        assert [s.error for s in scope.suppressed] in ([], [shadowed.value]), label
        if isinstance(primary.value, KafkaException):
            assert shadowed.value.args[0].code() == primary.value.args[0].code(), label
    # The largest message that fits is accepted by both.
    producer.produce(topic, b"x" * 964)
    with shadow():
        producer.produce(topic, b"x" * 964)
    assert len(producer) == 1
    producer.purge()


@pytest.mark.usefixtures("installed")
def test_bad_topic_fails_delivery_alike(kafka_broker: KafkaBroker) -> None:
    reports = Reports()
    for name in ["bad topic!", "..", "x" * 250]:
        # A fresh producer each time: once a producer has learnt that a topic is bad, the
        # client may raise _UNKNOWN_TOPIC at produce() (not modelled in shadow: see docs).
        producer = confluent_kafka.Producer(kafka_broker.config())
        producer.produce(name, b"x", on_delivery=reports)
        producer.flush(10)
        with shadow():
            producer.produce(name, b"x", on_delivery=reports)
            producer.flush(10)
    codes = [(s, e.code() if e else None) for s, e, _ in reports.seen]
    assert codes == [(False, KafkaError.TOPIC_EXCEPTION), (True, KafkaError.TOPIC_EXCEPTION)] * 3


@pytest.mark.usefixtures("installed")
def test_shared_producer_across_threads_and_tasks(kafka_broker: KafkaBroker, topic: str) -> None:
    """Interleaved shadow and primary produces: every primary once, no shadow stored."""
    producer = confluent_kafka.Producer(kafka_broker.config())
    reports = Reports()
    start = threading.Barrier(5)

    def send(value: bytes) -> None:
        tag = b"shadow-" if is_shadow() else b"primary-"
        producer.produce(topic, tag + value, on_delivery=reports)

    def thread_worker(n: int) -> None:
        start.wait()
        for i in range(25):
            if (n + i) % 2:
                with shadow():
                    send(f"{n}-{i}".encode())
                    producer.poll(0)
            else:
                send(f"{n}-{i}".encode())
                producer.poll(0)

    async def task(i: int) -> None:
        if i % 2:
            async with shadow():
                await asyncio.sleep(0)
                send(f"4-{i}".encode())
                await asyncio.sleep(0)
                producer.poll(0)
        else:
            await asyncio.sleep(0)
            send(f"4-{i}".encode())
            producer.poll(0)

    async def tasks() -> None:
        start.wait()
        await asyncio.gather(*(task(i) for i in range(25)))

    threads = [threading.Thread(target=thread_worker, args=(n,)) for n in range(4)]
    threads.append(threading.Thread(target=asyncio.run, args=(tasks(),)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert producer.flush(10) == 0
    sent = [(f"{n}-{i}", (n + i) % 2 == 1) for n in range(5) for i in range(25)]
    primaries = sorted(f"primary-{v}".encode() for v, as_shadow in sent if not as_shadow)
    shadows = sorted(f"shadow-{v}".encode() for v, as_shadow in sent if as_shadow)
    assert sorted(reports.values(shadow_only=False)) == primaries
    assert sorted(reports.values(shadow_only=True)) == shadows
    assert sorted(v for v in stored(kafka_broker, topic) if v is not None) == primaries


@pytest.mark.asyncio
@pytest.mark.usefixtures("installed")
async def test_asyncio_producers(kafka_broker: KafkaBroker, topic: str) -> None:
    from confluent_kafka.aio import AIOProducer, AsyncSerializingProducer

    producer = AIOProducer(kafka_broker.config(), buffer_timeout=0.05)
    serializing = await AsyncSerializingProducer(
        kafka_broker.config(**{"value.serializer": lambda v, ctx: json.dumps(v).encode()}),
        buffer_timeout=0.05,
    )
    try:

        async def request(n: int, as_shadow: bool) -> Any:
            if as_shadow:
                async with shadow():
                    return await request(n, False)
            tag = "shadow" if is_shadow() else "primary"
            plain = await producer.produce(topic, f"{tag}-{n}".encode())
            typed = await serializing.produce(topic, value={tag: n})
            return await plain, await typed

        results = await asyncio.gather(*(request(n, n % 2 == 1) for n in range(10)))
        await producer.flush()
        await serializing.flush()
        for n, (plain, typed) in enumerate(results):
            tag = "shadow" if n % 2 else "primary"
            assert plain.value() == f"{tag}-{n}".encode()
            assert json.loads(typed.value()) == {tag: n}
            assert (plain.offset() is None) is (tag == "shadow")
        with shadow():
            too_large = await producer.produce(topic, b"x" * 2_000_000)
            with pytest.raises(KafkaException):
                await too_large
            assert await producer.init_transactions() is None
    finally:
        await producer.close()
        await serializing.close()
    expected = sorted(
        [f"primary-{n}".encode() for n in range(0, 10, 2)]
        + [json.dumps({"primary": n}).encode() for n in range(0, 10, 2)]
    )
    assert sorted(v for v in stored(kafka_broker, topic) if v is not None) == expected


def test_guard_wraps_a_producer_created_before_install(
    kafka_broker: KafkaBroker, topic: str
) -> None:
    raw = confluent_kafka.Producer(kafka_broker.config(**{"message.max.bytes": 2000}))
    producer = guard_module.guard(raw, config={"message.max.bytes": 2000})
    assert guard_module.guard(producer) is producer
    assert isinstance(producer, confluent_kafka.Producer)
    reports = Reports()
    with producer as entered:
        assert entered is producer
        with shadow():
            produce_orders(producer, topic, "shadow", reports)
            with pytest.raises(KafkaException):
                producer.produce(topic, b"x" * 2000)
        produce_orders(producer, topic, "primary", reports)
    assert reports.values(shadow_only=True) == [b"shadow-0", b"shadow-1", b"shadow-2"]
    assert stored(kafka_broker, topic) == [b"primary-0", b"primary-1", b"primary-2"]


def test_install_names_producer_subclasses_defined_before_it(
    kafka_broker: KafkaBroker, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Such a subclass inherits from the unguarded class: install() says so and how to fix."""

    class EarlyProducer(confluent_kafka.Producer):
        pass

    with caplog.at_level(logging.WARNING, logger="shadowguard"):
        guard_module.install()
    try:
        warned = [r.getMessage() for r in caplog.records if "unguarded" in r.getMessage()]
        assert len(warned) == 1
        assert f"{__name__}.{EarlyProducer.__qualname__}" in warned[0]
        assert "guard(producer)" in warned[0]

        class LateProducer(confluent_kafka.Producer):
            pass

        assert guard_module._is_guarded(LateProducer(kafka_broker.config()))
        assert not guard_module._is_guarded(EarlyProducer(kafka_broker.config()))
        assert LateProducer not in guard_module._unguarded_subclasses()
        producer = guard_module.guard(EarlyProducer(kafka_broker.config()))
        reports = Reports()
        with shadow():
            produce_orders(producer, topic, "shadow", reports)
        produce_orders(producer, topic, "primary", reports)
    finally:
        guard_module.uninstall()
        del EarlyProducer
        gc.collect()
    assert stored(kafka_broker, topic) == [b"primary-0", b"primary-1", b"primary-2"]


def test_guard_wraps_a_serializing_producer(kafka_broker: KafkaBroker, topic: str) -> None:
    seen: list[Any] = []

    def upper(obj: Any, ctx: Any) -> bytes:
        seen.append((ctx.field, is_shadow()))
        return str(obj).upper().encode()

    raw = confluent_kafka.SerializingProducer(kafka_broker.config(**{"value.serializer": upper}))
    producer = guard_module.guard(raw)
    assert isinstance(producer, confluent_kafka.SerializingProducer)
    reports = Reports()
    with shadow():
        producer.produce(topic, value="shadow", on_delivery=reports)
        producer.flush(10)
    producer.produce(topic, value="primary")
    producer.flush(10)
    assert seen == [("value", True), ("value", False)]
    assert reports.values() == [b"SHADOW"]
    assert stored(kafka_broker, topic) == [b"PRIMARY"]


@pytest.mark.asyncio
async def test_guard_wraps_an_asyncio_producer(kafka_broker: KafkaBroker, topic: str) -> None:
    from confluent_kafka.aio import AIOProducer

    producer = guard_module.guard(AIOProducer(kafka_broker.config(), buffer_timeout=0.05))
    assert isinstance(producer, AIOProducer)
    try:
        with shadow():
            message = await (await producer.produce(topic, b"shadow"))
            await producer.flush()
        assert message.value() == b"shadow"
        await (await producer.produce(topic, b"primary"))
    finally:
        await producer.close()
    assert stored(kafka_broker, topic) == [b"primary"]


def test_guard_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match="confluent_kafka producer"):
        guard_module.guard(object())


payloads = st.one_of(
    st.none(),
    st.binary(max_size=8),
    st.text(max_size=8),
    st.integers(896, 1000).map(lambda n: b"x" * n),
    st.integers(440, 500).map(lambda n: "é" * n),
    st.integers(),
    st.just(bytearray(b"x")),
    st.floats(allow_nan=False),
)
header_values = st.one_of(st.none(), st.binary(max_size=80), st.text(max_size=80), st.integers())
header_keys = st.one_of(st.text(max_size=70), st.integers(), st.binary(max_size=4))
headers = st.one_of(
    st.none(),
    st.dictionaries(header_keys, header_values, max_size=3),
    st.lists(st.tuples(header_keys, header_values), max_size=3),
    st.lists(st.tuples(st.text(max_size=2)), max_size=2),
    st.text(max_size=3),
)


def outcome(call: Any) -> Any:
    try:
        call()
    except KafkaException as exc:
        return ("KafkaException", exc.args[0].code())
    except Exception as exc:
        return type(exc).__name__
    return "queued"


@pytest.mark.usefixtures("installed")
def test_validation_matches_the_client(kafka_broker: KafkaBroker, topic: str) -> None:
    """For any message, shadow produce() accepts or raises exactly as the client does."""
    producer = confluent_kafka.Producer(kafka_broker.config(**{"message.max.bytes": 1000}))

    @settings(max_examples=300, deadline=None, database=None)
    @given(
        value=payloads,
        key=payloads,
        headers=headers,
        partition=st.sampled_from([-1, 0, "0", None]),
    )
    def check(value: Any, key: Any, headers: Any, partition: Any) -> None:
        kwargs = {"value": value, "key": key, "headers": headers, "partition": partition}
        primary = outcome(lambda: producer.produce(topic, **kwargs))
        producer.purge()
        with shadow():
            shadowed = outcome(lambda: producer.produce(topic, **kwargs))
        assert shadowed == primary

    check()
    producer.flush(10)


# Lengths around 64 and 8192 change the size of a varint in the header encoding.
long_texts = st.integers(50, 150).map(lambda n: "h" * n)
valid_payloads = st.one_of(
    st.none(),
    st.binary(max_size=300),
    st.text(max_size=150),
    long_texts,
    st.integers(50, 150).map(lambda n: b"b" * n),
)
header_names = st.one_of(st.text(max_size=150), long_texts, st.integers())
valid_headers = st.one_of(
    st.none(),
    st.dictionaries(header_names, valid_payloads, max_size=3),
    st.lists(st.tuples(header_names, valid_payloads), max_size=3),
)


@pytest.mark.usefixtures("installed")
def test_size_limit_matches_the_client_at_the_boundary(
    kafka_broker: KafkaBroker, topic: str
) -> None:
    """The largest value the client accepts is accepted in shadow, one byte more is not."""
    producer = confluent_kafka.Producer(kafka_broker.config(**{"message.max.bytes": 10000}))

    def accepts(size: int, key: Any, headers: Any) -> bool:
        try:
            producer.produce(topic, b"v" * size, key=key, headers=headers)
        except KafkaException:
            return False
        finally:
            producer.purge()
        return True

    @settings(max_examples=60, deadline=None, database=None)
    @given(key=valid_payloads, headers=valid_headers)
    def check(key: Any, headers: Any) -> None:
        low, high = 0, 10000  # the client accepts `low` bytes and refuses more than `high`
        if not accepts(low, key, headers):
            high = -1
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if accepts(middle, key, headers) else (low, middle - 1)
        with shadow():
            if high >= 0:
                producer.produce(topic, b"v" * high, key=key, headers=headers)
            with pytest.raises(KafkaException):
                producer.produce(topic, b"v" * (high + 1), key=key, headers=headers)

    check()
    assert producer.flush(10) == 0  # only purged primary attempts were ever queued


class FakeSchemaRegistry(BaseHTTPRequestHandler):
    """The two Schema Registry calls a serializer makes: register and look up."""

    schemas: ClassVar[dict[str, str]] = {}
    requests: ClassVar[list[tuple[str, str]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        path = self.path.split("?")[0]
        subject = path.split("/")[2]
        self.requests.append(("register" if path.endswith("/versions") else "lookup", subject))
        if path.endswith("/versions"):
            self.schemas[subject] = body["schema"]
            self._reply(200, {"id": 7})
        elif self.schemas.get(subject) == body["schema"]:
            self._reply(200, {"subject": subject, "id": 7, "version": 1, "schema": body["schema"]})
        else:
            self._reply(404, {"error_code": 40403, "message": "Schema not found"})

    def do_GET(self) -> None:  # subject-name associations: a read, not recorded
        self._reply(404, {"error_code": 40401, "message": "Not found"})

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def schema_registry() -> Iterator[str]:
    FakeSchemaRegistry.schemas.clear()
    FakeSchemaRegistry.requests.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeSchemaRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.usefixtures("installed")
def test_schema_registry_serializer_never_registers_in_shadow(
    kafka_broker: KafkaBroker, topic: str, schema_registry: str
) -> None:
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.json_schema import JSONSerializer

    schema = json.dumps({"type": "object", "properties": {"n": {"type": "integer"}}})

    def make_producer() -> Any:
        client = SchemaRegistryClient({"url": schema_registry})
        serializer = JSONSerializer(schema, client, conf={"auto.register.schemas": True})
        return confluent_kafka.SerializingProducer(
            kafka_broker.config(**{"value.serializer": serializer})
        )

    reports = Reports()
    with shadow() as scope:
        with pytest.raises(confluent_kafka.error.ValueSerializationError) as failed:
            make_producer().produce(topic, value={"n": 1})
        blocked = failed.value.__context__
        assert isinstance(blocked, shadowguard.ShadowSideEffectBlocked)
        assert "auto.register.schemas" in str(blocked)
    assert FakeSchemaRegistry.requests == [("lookup", f"{topic}-value")]
    assert scope.counts["call"] == 1

    primary = make_producer()
    primary.produce(topic, value={"n": 2})
    primary.flush(10)
    assert FakeSchemaRegistry.requests[1:] == [("register", f"{topic}-value")]

    with shadow():
        producer = make_producer()
        producer.produce(topic, value={"n": 3}, on_delivery=reports)
        with pytest.raises(confluent_kafka.error.ValueSerializationError):
            producer.produce(topic, value={"n": "not an integer"})
        producer.flush(10)
    assert FakeSchemaRegistry.requests[2:] == [("lookup", f"{topic}-value")]
    (stored_message,) = kafka_broker.messages(topic)
    (_, _, shadow_message) = reports.seen[0]
    # Same framing (magic byte and schema id) as the primary message on the broker.
    assert shadow_message.value()[:5] == stored_message.value()[:5]
    assert json.loads(shadow_message.value()[5:]) == {"n": 3}


@pytest.mark.usefixtures("installed")
def test_shadow_mode_process_without_a_scope(kafka_broker: KafkaBroker, topic: str) -> None:
    """SHADOW_MODE=true: no scope anywhere, still nothing reaches the broker."""
    reports = Reports()
    shadowguard.configure(mode="shadow")
    try:
        assert shadowguard.current_scope() is None
        producer = confluent_kafka.Producer(
            kafka_broker.config(**{"transactional.id": f"tx-{topic}"})
        )
        producer.init_transactions(10)
        producer.begin_transaction()
        producer.produce(topic, b"shadow", on_delivery=reports)
        producer.commit_transaction(10)
        assert producer.flush(10) == 0
    finally:
        shadowguard._config.reset()
    assert reports.values(shadow_only=True) == [b"shadow"]
    primary = confluent_kafka.Producer(kafka_broker.config())
    primary.produce(topic, b"primary")
    primary.flush(10)
    assert stored(kafka_broker, topic) == [b"primary"]


@pytest.mark.usefixtures("installed")
def test_configured_delivery_callback_and_only_errors(kafka_broker: KafkaBroker) -> None:
    reports, errors_only = Reports(), Reports()
    producer = confluent_kafka.Producer(kafka_broker.config(on_delivery=reports))
    quiet = confluent_kafka.Producer(
        kafka_broker.config(**{"on_delivery": errors_only, "delivery.report.only.error": True})
    )
    with shadow():
        producer.produce("orders", b"1")
        quiet.produce("orders", b"2")
        quiet.produce("bad topic", b"3")
        producer.flush(10)
        quiet.flush(10)
    assert reports.values(shadow_only=True) == [b"1"]
    assert [(m.value(), e is not None) for _, e, m in errors_only.seen] == [(b"3", True)]


@pytest.mark.usefixtures("installed", "span_exporter")
def test_span_is_tagged(kafka_broker: KafkaBroker, span_exporter: Any) -> None:
    from opentelemetry import trace

    producer = confluent_kafka.Producer(kafka_broker.config())
    with trace.get_tracer("test").start_as_current_span("request"), shadow():
        producer.produce("orders", b"1")
    (span,) = span_exporter.get_finished_spans()
    assert span.attributes["messaging.publish_suppressed"] is True
    assert span.events[0].attributes["target"] == "orders"


@pytest.mark.asyncio
@pytest.mark.usefixtures("installed")
async def test_asyncio_producer_rejects_headers_alike(kafka_broker: KafkaBroker) -> None:
    from confluent_kafka.aio import AIOProducer

    producer = AIOProducer(kafka_broker.config(), buffer_timeout=0)
    try:
        with pytest.raises(NotImplementedError):
            await producer.produce("orders", b"x", headers={"a": b"b"})
        with shadow(), pytest.raises(NotImplementedError):
            await producer.produce("orders", b"x", headers={"a": b"b"})
    finally:
        await producer.close()


PRODUCE_PARAMETERS = (
    "value",
    "key",
    "partition",
    "callback",
    "on_delivery",
    "timestamp",
    "headers",
)


@st.composite
def produce_calls(draw: st.DrawFn) -> tuple[list[Any], dict[str, Any]]:
    """A produce() call: each parameter omitted, by keyword, or positional where allowed."""
    choices = {
        "value": st.binary(max_size=4),
        "key": st.one_of(st.none(), st.binary(max_size=4)),
        "partition": st.sampled_from([-1, 0]),
        "callback": st.sampled_from([None, "callback"]),
        "on_delivery": st.sampled_from([None, "on_delivery"]),
        "timestamp": st.sampled_from([0, 1_600_000_000_000]),
        "headers": st.sampled_from([None, [("h", b"1")], {"h": "2"}]),
    }
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    positional = True
    for name in PRODUCE_PARAMETERS:
        how = draw(st.sampled_from(["omit", "keyword", "positional"]))
        if how == "omit":
            positional = False
            continue
        value = draw(choices[name])
        if how == "positional" and positional:
            args.append(value)
        else:
            positional = False
            kwargs[name] = value
    return args, kwargs


@pytest.mark.usefixtures("installed")
def test_primary_produce_forwards_every_call_form_unchanged(kafka_broker: KafkaBroker) -> None:
    """The guarded primary path passes arguments on exactly as given (callbacks included)."""
    raw_topic, guarded_topic = kafka_broker.create_topic(), kafka_broker.create_topic()
    fired: dict[str, list[tuple[str, bytes]]] = {"raw": [], "guarded": []}

    def callbacks(side: str) -> dict[str, Any]:
        def make(tag: str) -> Any:
            return lambda error, message: fired[side].append((tag, message.value()))

        return {tag: make(tag) for tag in ("callback", "on_delivery", "config")}

    sides = {side: callbacks(side) for side in fired}
    raw = confluent_kafka.cimpl.Producer(kafka_broker.config(on_delivery=sides["raw"]["config"]))
    guarded = confluent_kafka.Producer(kafka_broker.config(on_delivery=sides["guarded"]["config"]))

    @settings(max_examples=40, deadline=None, database=None)
    @given(call=produce_calls())
    def check(call: tuple[list[Any], dict[str, Any]]) -> None:
        args, kwargs = call
        outcomes = []
        for side, producer, topic in (("raw", raw, raw_topic), ("guarded", guarded, guarded_topic)):

            def resolve(v: Any, side: str = side) -> Any:
                return sides[side][v] if isinstance(v, str) and v in sides[side] else v

            def call_once(producer: Any = producer, topic: str = topic) -> None:
                given = {k: resolve(v) for k, v in kwargs.items()}
                producer.produce(topic, *map(resolve, args), **given)

            fired[side].clear()
            outcomes.append(outcome(call_once))
            producer.flush(10)
        assert outcomes[0] == outcomes[1]
        assert fired["raw"] == fired["guarded"]

    check()

    def summary(topic: str) -> list[Any]:
        return [
            (m.key(), m.value(), m.headers(), m.partition(), m.timestamp()[1] == 1_600_000_000_000)
            for m in kafka_broker.messages(topic)
        ]

    assert summary(raw_topic) == summary(guarded_topic)


@pytest.mark.asyncio
@pytest.mark.usefixtures("installed")
async def test_async_schema_registry_client_only_looks_up_in_shadow(schema_registry: str) -> None:
    from confluent_kafka.schema_registry import AsyncSchemaRegistryClient, Schema

    client = AsyncSchemaRegistryClient({"url": schema_registry})
    schema = Schema(json.dumps({"type": "object"}), "JSON")
    with shadow(), pytest.raises(shadowguard.ShadowSideEffectBlocked):
        await client.register_schema("orders-value", schema)
    assert FakeSchemaRegistry.requests == [("lookup", "orders-value")]
    assert await client.register_schema("orders-value", schema) == 7
    fresh = AsyncSchemaRegistryClient({"url": schema_registry})
    with shadow():
        assert await fresh.register_schema("orders-value", schema) == 7
    assert FakeSchemaRegistry.requests[1:] == [
        ("register", "orders-value"),
        ("lookup", "orders-value"),
    ]
