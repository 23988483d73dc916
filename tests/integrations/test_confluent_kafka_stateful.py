"""Primary and shadow produces interleaved over long-lived Kafka producers (Hypothesis).

A worker keeps its producers for the life of the process, as services do: one made before
``install()`` (it must refuse in shadow), one made after it, one ``SerializingProducer``,
one guarded explicitly with ``guard()``, and a transactional producer initialised lazily by
whichever request uses it first. Steps interleave primary produces and transactions, shadow
blocks (some failing half-way), shadow work in a propagated thread, a primary thread and a
shadow thread on the same producer at once, and polls from either side. After every step,
every delivery report ran on its own side; at the end of each example the broker holds
exactly the primary's committed messages, each once.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import threading
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import confluent_kafka
import pytest
from confluent_kafka.serialization import StringSerializer
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import shadowguard
from shadowguard import ShadowSideEffectBlocked
from shadowguard.integrations import confluent_kafka as guard_module
from tests._soak import stateful_settings
from tests.integrations._support import installing
from tests.peers.kafka import DeliveryReports, KafkaBroker

PLAIN = ("before_install", "after_install", "serializing", "guarded")


class _Failed(Exception):
    pass


class Worker(RuleBasedStateMachine):
    """Kept producers, and the model: the primary's committed values."""

    broker: ClassVar[KafkaBroker]
    producers: ClassVar[dict[str, Any]]
    transactional: ClassVar[Any]
    initialised: ClassVar[list[bool]]  # the application's "init_transactions() done" flag

    def __init__(self) -> None:
        super().__init__()
        self.topic = self.broker.create_topic("stateful")
        self.ids = itertools.count(1)
        self.reports = DeliveryReports()
        self.committed: list[bytes] = []
        self.open: list[bytes] | None = None  # the primary's open transaction

    def _produce(self, name: str, value: bytes) -> None:
        producer = self.producers[name]
        if name == "serializing":
            producer.produce(self.topic, value=value.decode(), on_delivery=self.reports)
        else:
            producer.produce(self.topic, value, on_delivery=self.reports)

    def _shadow_produce(self, name: str, value: bytes) -> None:
        if name == "before_install":
            with pytest.raises(ShadowSideEffectBlocked):
                self._produce(name, value)
        else:
            self._produce(name, value)

    def _init_once(self) -> None:
        if not self.initialised[0]:
            self.transactional.init_transactions(10)
            self.initialised[0] = True

    @rule(name=st.sampled_from(PLAIN))
    def primary_produce(self, name: str) -> None:
        value = f"p-{next(self.ids)}".encode()
        self._produce(name, value)
        self.committed.append(value)

    @rule(
        names=st.lists(st.sampled_from(PLAIN), min_size=1, max_size=3),
        fails=st.booleans(),
        polls=st.booleans(),
    )
    def shadow_block(self, names: list[str], fails: bool, polls: bool) -> None:
        with contextlib.suppress(_Failed), shadowguard.shadow():
            for name in names:
                self._shadow_produce(name, f"s-{next(self.ids)}".encode())
                if polls:
                    self.producers[name].poll(0)
            if fails:
                raise _Failed

    @rule(name=st.sampled_from(PLAIN))
    def shadow_in_a_propagated_thread(self, name: str) -> None:
        errors: list[BaseException] = []

        def work() -> None:
            try:
                self._shadow_produce(name, f"s-{next(self.ids)}".encode())
            except BaseException as exc:
                errors.append(exc)

        with shadowguard.shadow():
            worker = threading.Thread(target=shadowguard.propagate(work))
            worker.start()
            worker.join()
        assert errors == []

    @rule(name=st.sampled_from(PLAIN))
    def primary_and_shadow_threads_at_once(self, name: str) -> None:
        """Two requests on one producer at the same time, one mirrored."""
        primary = [f"p-{next(self.ids)}".encode() for _ in range(5)]
        errors: list[BaseException] = []
        start = threading.Barrier(2)

        def primary_request() -> None:
            start.wait()
            try:
                for value in primary:
                    self._produce(name, value)
            except BaseException as exc:
                errors.append(exc)

        def shadow_request() -> None:
            start.wait()
            try:
                with shadowguard.shadow():
                    for _ in range(5):
                        self._shadow_produce(name, f"s-{next(self.ids)}".encode())
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=primary_request),
            threading.Thread(target=shadow_request),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        self.committed.extend(primary)

    @rule(name=st.sampled_from(PLAIN), shadow=st.booleans())
    def poll(self, name: str, shadow: bool) -> None:
        if shadow:
            with shadowguard.shadow():
                self.producers[name].poll(0)
        else:
            self.producers[name].poll(0)

    @precondition(lambda self: self.open is None)
    @rule(commit=st.booleans())
    def primary_transaction(self, commit: bool) -> None:
        self._init_once()
        self.transactional.begin_transaction()
        values = [f"p-{next(self.ids)}".encode() for _ in range(2)]
        for value in values:
            self.transactional.produce(self.topic, value, on_delivery=self.reports)
        if commit:
            self.transactional.commit_transaction(10)
            self.committed.extend(values)
        else:
            self.transactional.abort_transaction(10)

    @precondition(lambda self: self.open is None)
    @rule()
    def primary_begins_a_transaction(self) -> None:
        self._init_once()
        self.transactional.begin_transaction()
        self.open = []

    @precondition(lambda self: self.open is not None)
    @rule()
    def primary_produces_in_its_transaction(self) -> None:
        assert self.open is not None
        value = f"p-{next(self.ids)}".encode()
        self.transactional.produce(self.topic, value, on_delivery=self.reports)
        self.open.append(value)

    @precondition(lambda self: self.open is not None)
    @rule(commit=st.booleans())
    def primary_ends_its_transaction(self, commit: bool) -> None:
        assert self.open is not None
        if commit:
            self.transactional.commit_transaction(10)
            self.committed.extend(self.open)
        else:
            self.transactional.abort_transaction(10)
        self.open = None

    @rule(commit=st.booleans(), fails=st.booleans())
    def shadow_transaction(self, commit: bool, fails: bool) -> None:
        """The same code as the primary's, mirrored: possibly the first to initialise."""
        with contextlib.suppress(_Failed), shadowguard.shadow():
            self._init_once()
            self.transactional.begin_transaction()
            self.transactional.produce(
                self.topic, f"s-{next(self.ids)}".encode(), on_delivery=self.reports
            )
            if fails:
                raise _Failed
            if commit:
                self.transactional.commit_transaction(10)
            else:
                self.transactional.abort_transaction(10)

    @invariant()
    def every_report_ran_on_its_own_side(self) -> None:
        with self.reports.lock:
            seen = list(self.reports.seen)
        for shadow, error, message in seen:
            value = message.value()
            if value.startswith(b"s-"):
                assert shadow, f"a shadow report ran as primary: {value!r}"
                assert error is None
            else:
                assert not shadow, f"a primary report ran as shadow: {value!r}"

    def teardown(self) -> None:
        if self.open is not None:
            self.transactional.commit_transaction(10)
            self.committed.extend(self.open)
        for producer in [*self.producers.values(), self.transactional]:
            assert producer.flush(15) == 0
        stored = [m.value() for m in self.broker.messages(self.topic, idle=0.5)]
        assert sorted(stored) == sorted(self.committed)
        with self.reports.lock:
            delivered = [m.value() for s, e, m in self.reports.seen if not s and e is None]
        committed = set(self.committed)
        # An aborted transaction's messages may be reported too; each committed one once.
        assert sorted(v for v in delivered if v in committed) == sorted(self.committed)


@pytest.fixture
def kept_producers(kafka_broker: KafkaBroker) -> Iterator[dict[str, Any]]:
    """A producer made before install(); the others made after it, as a service would."""
    config = kafka_broker.config(log_level=0)  # quiet once the session's broker stops
    before = confluent_kafka.Producer(config)
    with installing(guard_module):
        producers = {
            "before_install": before,
            "after_install": confluent_kafka.Producer(config),
            "serializing": confluent_kafka.SerializingProducer(
                {**config, "value.serializer": StringSerializer()}
            ),
            "guarded": guard_module.guard(confluent_kafka.cimpl.Producer(config), config=config),
            "transactional": confluent_kafka.Producer(
                {**config, "transactional.id": f"stateful-{uuid.uuid4().hex[:8]}"}
            ),
        }
        try:
            yield producers
        finally:
            for producer in producers.values():
                producer.flush(10)
            producers.clear()
            gc.collect()


def test_kept_producers_interleaved(
    kafka_broker: KafkaBroker, kept_producers: dict[str, Any]
) -> None:
    Worker.broker = kafka_broker
    Worker.transactional = kept_producers.pop("transactional")
    Worker.producers = kept_producers
    Worker.initialised = [False]
    try:
        run_state_machine_as_test(Worker, settings=stateful_settings(8, steps=12))
    finally:
        del Worker.producers, Worker.transactional
