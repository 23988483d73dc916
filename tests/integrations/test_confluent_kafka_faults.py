"""confluent-kafka guard under faults: the broker stopped while shadow and primary produce.

Each test runs its own Tansu broker (tests/peers/kafka.py) and stops it with SIGTERM,
then starts an empty one on the same port (Tansu keeps nothing on disk). Required: the
shadow path fails closed (nothing it produced is ever stored, before or after the restart),
the primary path reports exactly what an unguarded producer reports, and the producer works
afterwards. The unguarded control is the client's own type, taken before ``install()``: its
primary calls reach the client unchanged.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from typing import Any

import confluent_kafka
import pytest
from confluent_kafka import cimpl

from shadowguard import is_shadow, shadow
from tests.peers.kafka import start_broker
from tests.peers.processes import stop_process

SINK = "confluent_kafka"
CLIENT_TYPE = cimpl.Producer


class Broker:
    """A Tansu broker that can be stopped and started again on its port."""

    def __init__(self) -> None:
        self.peer, self.process = start_broker()
        self.port = int(self.peer.bootstrap.rsplit(":", 1)[1])
        self.topic = self.peer.create_topic()

    def config(self, **extra: Any) -> dict[str, Any]:
        """Producer configuration that reconnects to a restarted broker within 0.2 s.

        With the client's default backoff (up to 10 s) a message produced just after a
        restart can time out before the client is back, in older clients more often. The
        client's own logging is off: a producer of these tests that outlives its broker
        would print its reconnect failures into every later test's output.
        """
        options = {"reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 200, "log_level": 0}
        return self.peer.config(**{**options, **extra})

    def stop(self) -> None:
        # SIGTERM; Tansu waits for connected clients for up to 5 s before it exits.
        stop_process(self.process, timeout=10)

    def start(self) -> None:
        self.peer, self.process = start_broker(self.port)
        self._create(self.topic)

    def _create(self, name: str) -> None:
        from confluent_kafka.admin import AdminClient
        from confluent_kafka.cimpl import NewTopic

        admin = AdminClient({"bootstrap.servers": self.peer.bootstrap})
        try:
            admin.create_topics([NewTopic(name, 1, 1)])[name].result(timeout=10)
        except confluent_kafka.KafkaException as exc:
            # A reconnected producer's metadata request may have auto-created it first.
            if exc.args[0].code() != confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                raise

    def values(self, expected: int = 0) -> list[bytes]:
        """What the broker stores, sorted; read again (up to 10 s) until ``expected`` are seen.

        A fresh reader right after a restart sometimes misses the newest batch; reading
        again finds it. Shadow values, if any were stored, would be read the same way.
        """
        deadline = time.monotonic() + 10
        while True:
            found = sorted(v or b"" for v in self.peer.values(self.topic))
            if len(found) >= expected or time.monotonic() > deadline:
                return found


@pytest.fixture(autouse=True)
def _producers_gone() -> Iterator[None]:
    """Producers kept alive by a cycle (an exception's traceback holds the test's frame)
    would go on reconnecting to the stopped broker through later tests: destroy them."""
    yield
    gc.collect()


@pytest.fixture
def broker() -> Iterator[Broker]:
    own = Broker()
    try:
        yield own
    finally:
        stop_process(own.process, timeout=10)


class Reports:
    """Delivery reports by producer tag: (value without the tag, error name, ran as shadow)."""

    def __init__(self) -> None:
        self.seen: dict[str, list[tuple[bytes, str | None, bool]]] = {}
        self.lock = threading.Lock()

    def callback(self, tag: str) -> Any:
        def report(error: Any, message: Any) -> None:
            value = message.value().removeprefix(tag.encode() + b"-")
            with self.lock:
                self.seen.setdefault(tag, []).append(
                    (value, error.name() if error else None, is_shadow())
                )

        return report


def produce_both(producers: dict[str, Any], reports: Reports, topic: str, step: str) -> None:
    """The same primary message on every producer; a shadow one on the guarded producer."""
    for tag, producer in producers.items():
        producer.produce(topic, f"{tag}-{step}".encode(), on_delivery=reports.callback(tag))
    with shadow():
        guarded = producers["guarded"]
        guarded.produce(
            topic, f"guarded-{step}-shadow".encode(), on_delivery=reports.callback("guarded")
        )


def flush_all(producers: dict[str, Any], timeout: float) -> dict[str, int]:
    return {tag: producer.flush(timeout) for tag, producer in producers.items()}


@pytest.mark.usefixtures("installed")
def test_broker_stopped_and_restarted_primary_as_unguarded_shadow_never_stored(
    broker: Broker,
) -> None:
    # Long enough to outlast a broker restart on a loaded machine (the "down-back" step),
    # short enough to expire while it stays down (the "down-lost" step). Reconnecting
    # quickly: librdkafka's backoff grows towards 10 s, past the timeout (a compat run lost
    # one producer's "down-back" message that way).
    config = broker.config(**{"message.timeout.ms": 8000, "reconnect.backoff.max.ms": 500})
    producers = {"guarded": confluent_kafka.Producer(config), "control": CLIENT_TYPE(config)}
    reports = Reports()
    topic = broker.topic

    produce_both(producers, reports, topic, "up")
    assert flush_all(producers, 10) == {"guarded": 0, "control": 0}

    broker.stop()  # queued while the broker is down, delivered once it is back
    produce_both(producers, reports, topic, "down-back")
    time.sleep(0.3)
    broker.start()
    assert flush_all(producers, 15) == {"guarded": 0, "control": 0}
    assert broker.values(2) == [b"control-down-back", b"guarded-down-back"]

    broker.stop()  # down for longer than message.timeout.ms
    produce_both(producers, reports, topic, "down-lost")
    # flush(0) counts queued events as well as messages (an "all brokers down" error may
    # be waiting on one producer and not yet on the other): compare what was reported.
    pending = flush_all(producers, 0)
    assert pending["guarded"] >= 1
    assert pending["control"] >= 1
    primary_seen = [r for tag in ("guarded", "control") for r in reports.seen[tag] if not r[2]]
    assert [r for r in primary_seen if r[0] == b"down-lost"] == []
    assert flush_all(producers, 15) == {"guarded": 0, "control": 0}

    broker.start()  # the producers are still usable, in both paths
    produce_both(producers, reports, topic, "again")
    assert flush_all(producers, 15) == {"guarded": 0, "control": 0}
    assert broker.values(2) == [b"control-again", b"guarded-again"]

    primary = [r for r in reports.seen["guarded"] if not r[2]]
    assert primary == reports.seen["control"]
    assert primary == [
        (b"up", None, False),
        (b"down-back", None, False),
        (b"down-lost", "_MSG_TIMED_OUT", False),
        (b"again", None, False),
    ]
    shadow_reports = [r for r in reports.seen["guarded"] if r[2]]
    assert [r[0] for r in shadow_reports] == [
        b"up-shadow",
        b"down-back-shadow",
        b"down-lost-shadow",
        b"again-shadow",
    ]


@pytest.mark.usefixtures("installed")
def test_broker_stopped_while_threads_share_one_producer(broker: Broker) -> None:
    """A primary and a shadow thread keep producing and polling through the outage."""
    producer = confluent_kafka.Producer(broker.config(**{"message.timeout.ms": 30000}))
    reports = Reports()
    after_restart = threading.Event()
    late: list[bytes] = []
    topic = broker.topic
    errors: list[BaseException] = []

    def on_primary(error: Any, message: Any) -> None:
        reports.callback("p")(error, message)
        if after_restart.is_set() and error is None:
            late.append(message.value())

    done = threading.Event()
    sent: dict[str, int] = {}

    def run(tag: str, as_shadow: bool) -> None:
        try:
            i = 0
            while not done.is_set():
                if as_shadow:
                    with shadow():
                        producer.produce(
                            topic, f"s-{i}".encode(), on_delivery=reports.callback("s")
                        )
                        producer.poll(0)
                else:
                    producer.produce(topic, f"p-{i}".encode(), on_delivery=on_primary)
                    producer.poll(0)
                i += 1
                time.sleep(0.02)
            sent[tag] = i
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t, t == "s")) for t in ("p", "s")]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    broker.stop()  # the threads go on producing and polling while it stops and stays down
    time.sleep(0.5)
    done.set()
    for thread in threads:
        thread.join(30)
    assert not errors
    producer.poll(0.5)  # reports of what the stopped broker acknowledged
    after_restart.set()
    broker.start()
    assert producer.flush(20) == 0

    stored = broker.values(len(late))
    # Exact with current clients; with confluent-kafka 2.13 Tansu loses some of them at
    # random (the unguarded client too): what is stored is what was reported delivered.
    assert set(stored) <= set(late)
    assert late, "nothing was queued during the outage"
    assert all(v.startswith(b"p-") for v in stored)
    primary = reports.seen["p"]
    assert sorted(r[0] for r in primary) == sorted(f"{i}".encode() for i in range(sent["p"]))
    assert {r[2] for r in primary} == {False}  # served from the shadow thread too: as primary
    assert {r[1] for r in primary} == {None}
    shadow_sent = range(sent["s"])
    assert sorted(r[0] for r in reports.seen["s"]) == sorted(f"{i}".encode() for i in shadow_sent)
    assert {r[2] for r in reports.seen["s"]} == {True}


@pytest.mark.usefixtures("installed")
def test_delivery_callback_errors_while_the_broker_is_down(broker: Broker) -> None:
    """A raising primary callback reaches poll()'s caller as unguarded; a shadow one stays shadow's."""
    config = broker.config(**{"message.timeout.ms": 1000})
    guarded = confluent_kafka.Producer(config)
    control = CLIENT_TYPE(config)
    topic = broker.topic

    def boom(error: Any, message: Any) -> None:
        raise LookupError(message.value())

    broker.stop()
    caught = {}
    for tag, producer in {"guarded": guarded, "control": control}.items():
        producer.produce(topic, b"primary", on_delivery=boom)
        with pytest.raises(LookupError) as raised:
            producer.flush(10)
        caught[tag] = raised.value.args
    assert caught["guarded"] == caught["control"] == (b"primary",)
    with shadow():
        guarded.produce(topic, b"shadow", on_delivery=boom)
        with pytest.raises(LookupError):
            guarded.flush(0)  # as the unguarded client: a shadow caller gets its own error
        guarded.produce(topic, b"shadow-2", on_delivery=boom)
    assert guarded.flush(0) == 0  # a primary caller: the shadow callback's error is logged
    broker.start()
    guarded.produce(topic, b"after")
    assert guarded.flush(15) == 0
    assert broker.values(1) == [b"after"]


@pytest.mark.usefixtures("installed")
def test_owed_init_transactions_while_the_broker_is_down(broker: Broker) -> None:
    """The init a shadow skipped fails in the primary's first call as the client's own would."""
    topic = broker.topic
    guarded = confluent_kafka.Producer(broker.config(**{"transactional.id": f"g-{topic}"}))
    control = CLIENT_TYPE(broker.config(**{"transactional.id": f"c-{topic}"}))
    broker.stop()
    with shadow():
        guarded.init_transactions(2)
    with pytest.raises(confluent_kafka.KafkaException) as from_guarded:
        guarded.begin_transaction()  # runs the owed init_transactions(2) first
    with pytest.raises(confluent_kafka.KafkaException) as from_control:
        control.init_transactions(2)
    assert from_guarded.value.args[0].code() == from_control.value.args[0].code()
    assert from_guarded.value.args[0].retriable() == from_control.value.args[0].retriable()
    broker.start()
    for producer, tag in ((guarded, b"guarded"), (control, b"control")):
        if producer is control:
            producer.init_transactions(15)
        producer.begin_transaction()  # the guarded one retries the owed init here
        producer.produce(topic, tag)
        producer.commit_transaction(15)
    assert broker.values(2) == [b"control", b"guarded"]
