"""confluent-kafka guard, transactions: in shadow they are recorded no-ops that cannot fence the primary.

The oracle is the Tansu broker of the session (tests/peers/kafka.py): the primary's open
transaction still commits, and read_committed consumers see only primary messages.
"""

from __future__ import annotations

import contextlib
from typing import Any

import confluent_kafka
import pytest

import shadowguard
from shadowguard import Kind, shadow
from shadowguard.integrations import confluent_kafka as guard_module
from tests.integrations._support import guarded_producer
from tests.peers.kafka import DeliveryReports, KafkaBroker

SINK = "confluent_kafka"
#: The client's own type, taken before any install().
CLIENT_TYPE = confluent_kafka.cimpl.Producer

TRANSACTION_CALLS = [
    "init_transactions",
    "begin_transaction",
    "send_offsets_to_transaction",
    "commit_transaction",
    "abort_transaction",
]


@pytest.fixture
def topic(kafka_broker: KafkaBroker) -> str:
    return kafka_broker.create_topic()


def transactional(kafka_broker: KafkaBroker, topic: str) -> tuple[str, dict[str, Any]]:
    """The transactional.id the tests of ``topic`` use, and a producer config with it."""
    transactional_id = f"tx-{topic}"
    return transactional_id, kafka_broker.config(**{"transactional.id": transactional_id})


def open_transaction(kafka_broker: KafkaBroker, topic: str, transactional_id: str) -> Any:
    """A primary producer in the middle of a transaction with one message."""
    primary = confluent_kafka.cimpl.Producer(
        kafka_broker.config(**{"transactional.id": transactional_id})
    )
    primary.init_transactions(10)
    primary.begin_transaction()
    primary.produce(topic, b"primary-open")
    return primary


def an_open_primary(kafka_broker: KafkaBroker, topic: str) -> tuple[str, dict[str, Any], Any]:
    """``transactional()``, and a primary producer of that id in the middle of a transaction."""
    transactional_id, config = transactional(kafka_broker, topic)
    return transactional_id, config, open_transaction(kafka_broker, topic, transactional_id)


def run_transaction_calls(producer: Any, topic: str) -> None:
    offsets = [confluent_kafka.TopicPartition(topic, 0, 1)]
    metadata = confluent_kafka.ConsumerGroupTopicPartitions("sg-group")
    producer.init_transactions(10)
    producer.begin_transaction()
    producer.send_offsets_to_transaction(offsets, metadata, 10)
    producer.commit_transaction(10)
    producer.abort_transaction(10)


@pytest.mark.usefixtures("installed")
def test_transactions_never_reach_the_broker(kafka_broker: KafkaBroker, topic: str) -> None:
    """A shadow producer with the primary's transactional.id does not fence the primary."""
    transactional_id, config = transactional(kafka_broker, topic)
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
    assert kafka_broker.values(topic) == [b"primary-open"]

    transfer(shadow_producer, "primary")  # the same code as primary fences the old producer
    assert kafka_broker.values(topic) == [b"primary-open", b"primary-1", b"primary-2"]


@pytest.mark.usefixtures("installed")
def test_shadow_mode_process_without_a_scope(kafka_broker: KafkaBroker, topic: str) -> None:
    """SHADOW_MODE=true: no scope anywhere, still nothing reaches the broker."""
    reports = DeliveryReports()
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
    assert kafka_broker.values(topic) == [b"primary"]


@pytest.mark.parametrize("how", ["install", "guard"])
def test_transaction_calls_are_recorded_as_kafka_transaction(
    kafka_broker: KafkaBroker, topic: str, how: str
) -> None:
    """Each shadow transaction call: kind kafka.transaction with the transactional_id."""
    transactional_id, config, primary = an_open_primary(kafka_broker, topic)
    producer = guarded_producer(how, config)
    try:
        with shadow() as scope:
            run_transaction_calls(producer, topic)
    finally:
        guard_module.uninstall()
    assert [s.detail["operation"] for s in scope.suppressed] == TRANSACTION_CALLS
    assert {s.kind for s in scope.suppressed} == {Kind.KAFKA_TRANSACTION}
    assert {s.target for s in scope.suppressed} == {transactional_id}
    assert {s.detail["transactional_id"] for s in scope.suppressed} == {transactional_id}
    assert {s.detail["action"] for s in scope.suppressed} == {"suppressed"}
    assert scope.counts == {"kafka.transaction": len(TRANSACTION_CALLS)}
    primary.commit_transaction(10)  # raises if the shadow calls had fenced it
    assert kafka_broker.values(topic) == [b"primary-open"]


@pytest.mark.asyncio
@pytest.mark.usefixtures("installed")
async def test_asyncio_transaction_calls_are_recorded_as_kafka_transaction(
    kafka_broker: KafkaBroker, topic: str
) -> None:
    from confluent_kafka.aio import AIOProducer

    transactional_id = f"tx-{topic}"
    primary = open_transaction(kafka_broker, topic, transactional_id)
    producer = AIOProducer(
        kafka_broker.config(**{"transactional.id": transactional_id}), buffer_timeout=0
    )
    try:
        with shadow() as scope:
            assert await producer.init_transactions(10) is None
            assert await producer.begin_transaction() is None
            assert await producer.commit_transaction(10) is None
    finally:
        await producer.close()
    assert [(s.kind, s.target, s.detail["operation"]) for s in scope.suppressed] == [
        (Kind.KAFKA_TRANSACTION, transactional_id, "init_transactions"),
        (Kind.KAFKA_TRANSACTION, transactional_id, "begin_transaction"),
        (Kind.KAFKA_TRANSACTION, transactional_id, "commit_transaction"),
    ]
    primary.commit_transaction(10)
    assert kafka_broker.values(topic) == [b"primary-open"]


class LazyTransactions:
    """The application under test: it initialises its producer on first use, once."""

    def __init__(self, producer: Any) -> None:
        self.producer = producer
        self.initialised = False

    def transfer(self, topic: str, tag: str) -> None:
        if not self.initialised:
            self.producer.init_transactions(10)
            self.initialised = True
        self.producer.begin_transaction()
        self.producer.produce(topic, f"{tag}-1".encode())
        self.producer.produce(topic, f"{tag}-2".encode())
        self.producer.commit_transaction(10)


@pytest.mark.parametrize("how", ["install", "guard"])
def test_init_transactions_first_called_in_shadow_is_owed_to_primary(
    kafka_broker: KafkaBroker, topic: str, how: str
) -> None:
    """The first primary transaction runs the init the shadow skipped; nothing is fenced early."""
    _, config, other = an_open_primary(kafka_broker, topic)
    app = LazyTransactions(guarded_producer(how, config))
    try:
        with shadow() as scope:
            app.transfer(topic, "shadow")
        assert app.initialised
        other.commit_transaction(10)  # raises if the shadow's init had fenced it
        app.transfer(topic, "primary")  # raised _STATE before: never initialised
        with shadow():
            app.transfer(topic, "shadow-again")
        app.transfer(topic, "primary-again")
    finally:
        guard_module.uninstall()
    assert scope.suppressed[0].detail["operation"] == "init_transactions"
    assert kafka_broker.values(topic) == [
        b"primary-open",
        b"primary-1",
        b"primary-2",
        b"primary-again-1",
        b"primary-again-2",
    ]


@pytest.mark.usefixtures("installed")
def test_primary_init_is_not_repeated_after_a_shadow_init(
    kafka_broker: KafkaBroker, topic: str
) -> None:
    """Primary first, shadow second: nothing is owed (a second real init would raise)."""
    producer = confluent_kafka.Producer(kafka_broker.config(**{"transactional.id": f"tx-{topic}"}))
    producer.init_transactions(10)
    with shadow():
        producer.init_transactions(10)
    producer.begin_transaction()
    producer.produce(topic, b"primary")
    producer.commit_transaction(10)
    # The primary's own init after a shadow one runs once, for real.
    late = confluent_kafka.Producer(kafka_broker.config(**{"transactional.id": f"tx2-{topic}"}))
    with shadow():
        late.init_transactions(10)
    late.init_transactions(10)
    late.begin_transaction()
    late.produce(topic, b"late")
    late.commit_transaction(10)
    assert kafka_broker.values(topic) == [b"primary", b"late"]


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["install", "guard"])
async def test_asyncio_init_first_called_in_shadow_is_owed_to_primary(
    kafka_broker: KafkaBroker, topic: str, how: str
) -> None:
    from confluent_kafka import aio

    config = kafka_broker.config(**{"transactional.id": f"tx-{topic}"})
    if how == "install":
        guard_module.install()  # before the class is looked up: else it refuses in shadow
        producer = aio.AIOProducer(config, buffer_timeout=0)
    else:
        producer = guard_module.guard(aio.AIOProducer(config, buffer_timeout=0), config=config)
    try:
        with shadow():
            await producer.init_transactions(10)
            await producer.begin_transaction()
            await producer.produce(topic, b"shadow")
            await producer.commit_transaction(10)
        await producer.begin_transaction()
        delivered = await producer.produce(topic, b"primary")
        await producer.commit_transaction(10)
        await delivered
    finally:
        await producer.close()
        guard_module.uninstall()
    assert kafka_broker.values(topic) == [b"primary"]


@pytest.mark.usefixtures("installed")
def test_shadow_transactions_in_a_thread_leave_primary_transactions_alone(
    kafka_broker: KafkaBroker, topic: str
) -> None:
    """One producer, a primary and a shadow thread each running transactions concurrently."""
    import threading

    producer = confluent_kafka.Producer(kafka_broker.config(**{"transactional.id": f"tx-{topic}"}))
    app = LazyTransactions(producer)
    init_lock = threading.Lock()
    errors: list[BaseException] = []

    def work(tag: str, as_shadow: bool) -> None:
        try:
            for i in range(5):
                with shadow() if as_shadow else contextlib.nullcontext():
                    with init_lock:  # the application's own: initialise once
                        if not app.initialised:
                            producer.init_transactions(10)
                            app.initialised = True
                    if as_shadow:
                        producer.begin_transaction()
                        producer.produce(topic, f"{tag}-{i}".encode())
                        producer.abort_transaction(10)
                        producer.commit_transaction(10)
                    else:
                        app.transfer(topic, f"{tag}-{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=("shadow", True)),
        threading.Thread(target=work, args=("primary", False)),
    ]
    threads[0].start()  # the shadow thread usually initialises first
    threads[1].start()
    for thread in threads:
        thread.join(60)
    assert not errors
    expected = sorted(f"primary-{i}-{n}".encode() for i in range(5) for n in (1, 2))
    assert sorted(v or b"" for v in kafka_broker.values(topic)) == expected


@pytest.mark.usefixtures("installed")
def test_shadow_mode_process_refuses_unguarded_transactions(
    kafka_broker: KafkaBroker, topic: str
) -> None:
    """SHADOW_MODE=true and a producer of the client's own type: refused, no fencing."""
    producer = CLIENT_TYPE(kafka_broker.config(**{"transactional.id": f"tx-{topic}"}))
    primary = open_transaction(kafka_broker, topic, f"tx-{topic}")
    shadowguard.configure(mode="shadow")
    try:
        with pytest.raises(shadowguard.ShadowSideEffectBlocked):
            producer.init_transactions(10)
        with pytest.raises(shadowguard.ShadowSideEffectBlocked):
            producer.produce(topic, b"shadow")
    finally:
        shadowguard._config.reset()
    primary.commit_transaction(10)
    assert kafka_broker.values(topic) == [b"primary-open"]
