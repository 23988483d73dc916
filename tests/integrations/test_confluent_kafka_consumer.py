"""confluent-kafka consumers and shadow requests: the primary's group is neither read nor committed.

A primary consumer is the client's own; a shadow request on it cannot commit (suppressed)
nor take messages (refused); a consumer created in a shadow request joins the shadow's
group. The oracle is the Tansu broker's committed offsets per group, asked with the admin
client. Consumers ``assign()`` their partition: a group join takes a second on Tansu.
"""

from __future__ import annotations

import time
from contextlib import closing
from typing import Any

import confluent_kafka
import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition, cimpl
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from shadowguard import ConfigError, Kind, Settings, ShadowSideEffectBlocked, shadow
from shadowguard import _config as config
from shadowguard.integrations import confluent_kafka as guard_module
from shadowguard.integrations.confluent_kafka._consumer import shadow_config
from tests.integrations._consumers import NONE, consumer_config, group, read, topic
from tests.peers.kafka import KafkaBroker

__all__ = ["group", "topic"]  # fixtures

SINK = "confluent_kafka"
ENV = "SHADOWGUARD_KAFKA_SHADOW_GROUP_SUFFIX"
# Taken before any install(); the tests create clients through confluent_kafka.<Class>.
ORIGINAL_CONSUMER = confluent_kafka.Consumer


def offsets(partitions: list[TopicPartition]) -> list[tuple[str | None, int, int]]:
    return [(tp.topic, tp.partition, tp.offset) for tp in partitions]


@pytest.mark.usefixtures("installed")
def test_primary_consumer_runs_as_unguarded(
    kafka_broker: KafkaBroker, topic: str, group: str
) -> None:
    """No shadow anywhere: the group as given, commits land in it, nothing is recorded."""
    with closing(confluent_kafka.Consumer(consumer_config(kafka_broker, group))) as consumer:
        assert isinstance(consumer, cimpl.Consumer)
        assert [m.value() for m in read(consumer, topic, 3)] == [b"m0", b"m1", b"m2"]
        assert offsets(consumer.commit(asynchronous=False)) == [(topic, 0, 3)]
        # Every spelling of the calls the guard names one by one reaches the client.
        assert [m.value() for m in consumer.consume(num_messages=1, timeout=5)] == [b"m3"]
        assert consumer.poll(timeout=5).value() == b"m4"  # type: ignore[union-attr]
        assert consumer.consume(timeout=0.2) == []
        assert consumer.consume(2, 0.2) == []
        with pytest.raises(TypeError):
            consumer.poll(None)  # type: ignore[arg-type]
    assert kafka_broker.committed(group, topic) == {0: 3}
    assert kafka_broker.committed(f"{group}-shadow", topic) == {0: NONE}


@pytest.mark.usefixtures("installed")
def test_shadow_request_cannot_commit_for_the_primary(
    kafka_broker: KafkaBroker, topic: str, group: str
) -> None:
    """commit() and store_offsets() from a shadow request are suppressed: the broker keeps 2."""
    with closing(confluent_kafka.Consumer(consumer_config(kafka_broker, group))) as consumer:
        taken = read(consumer, topic, 2)
        consumer.commit(asynchronous=False)
        with shadow() as scope:
            assert offsets(consumer.commit(asynchronous=False)) == [(topic, 0, 2)]
            assert consumer.commit(message=taken[1]) is None
            again = consumer.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
            assert offsets(again) == [(topic, 0, 5)]
            consumer.store_offsets(taken[1])
            consumer.store_offsets(offsets=[TopicPartition(topic, 0, 4)])
        assert scope.counts == {Kind.KAFKA_OFFSETS: 5}
        suppressed = scope.suppressed[2]
        assert suppressed.target == topic
        assert dict(suppressed.detail) == {
            "operation": "commit",
            "action": "suppressed",
            "offsets": ((topic, 0, 5),),
            "consumer_class": "shadowguard.integrations.confluent_kafka._consumer.GuardedConsumer",
        }
        assert scope.suppressed[1].detail["offsets"] == ((topic, 0, 2),)
        time.sleep(0.3)  # an asynchronous commit that got through would have landed by now
        assert kafka_broker.committed(group, topic) == {0: 2}
        # The primary goes on where it was, and its own commits still work.
        assert [m.value() for m in read(consumer, topic, 1)] == [b"m2"]
        consumer.commit(asynchronous=False)
        assert kafka_broker.committed(group, topic) == {0: 3}


REFUSED_CALLS: dict[str, Any] = {
    "poll": lambda c, t: c.poll(0),
    "consume": lambda c, t: c.consume(1, 0),
    "subscribe": lambda c, t: c.subscribe([t]),
    "unsubscribe": lambda c, t: c.unsubscribe(),
    "assign": lambda c, t: c.assign([TopicPartition(t, 0, 0)]),
    "incremental_assign": lambda c, t: c.incremental_assign([TopicPartition(t, 0, 0)]),
    "seek": lambda c, t: c.seek(TopicPartition(t, 0, 4)),
    "pause": lambda c, t: c.pause([TopicPartition(t, 0)]),
    "unassign": lambda c, t: c.unassign(),
    "close": lambda c, t: c.close(),
    "__exit__": lambda c, t: c.__exit__(None, None, None),
}


@pytest.mark.usefixtures("installed")
def test_shadow_request_cannot_take_messages_from_a_primary_consumer(
    kafka_broker: KafkaBroker, topic: str, group: str
) -> None:
    """Polling, or moving the consumer, from a shadow request is refused; the primary misses nothing."""
    with closing(confluent_kafka.Consumer(consumer_config(kafka_broker, group))) as consumer:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        with shadow() as scope:
            for name, call in REFUSED_CALLS.items():
                with pytest.raises(ShadowSideEffectBlocked, match=f"{name}\\(\\) in shadow") as e:
                    call(consumer, topic)
                assert "create a consumer of its own" in str(e.value)
            # Reads that take nothing still answer.
            assert offsets(consumer.assignment()) == [(topic, 0, OFFSET_BEGINNING)]
            assert consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1] >= 1
        assert scope.counts == {Kind.KAFKA_CONSUME: len(REFUSED_CALLS)}
        assert all(s.blocked for s in scope.suppressed)
        assert [m.value() for m in read(consumer, topic, 5)] == [f"m{i}".encode() for i in range(5)]


@pytest.mark.usefixtures("installed")
def test_shadow_transaction_commits_no_offsets_for_the_primary_group(
    kafka_broker: KafkaBroker, topic: str, group: str
) -> None:
    """send_offsets_to_transaction with the primary's group metadata, from shadow: nothing stored."""
    with closing(confluent_kafka.Consumer(consumer_config(kafka_broker, group))) as consumer:
        producer = confluent_kafka.Producer(
            kafka_broker.config(**{"transactional.id": f"{group}-tx"})
        )
        producer.init_transactions(10)
        read(consumer, topic, 2)

        def transform() -> None:
            producer.begin_transaction()
            producer.produce(topic, b"derived")
            position = consumer.position(consumer.assignment())
            producer.send_offsets_to_transaction(position, consumer.consumer_group_metadata())
            producer.commit_transaction(10)

        with shadow() as scope:
            transform()
        assert scope.counts == {Kind.KAFKA_TRANSACTION: 3, Kind.KAFKA_PRODUCE: 1}
        assert kafka_broker.committed(group, topic) == {0: NONE}
        transform()  # the same from primary commits them: the oracle sees it
        assert kafka_broker.committed(group, topic) == {0: 2}
        assert kafka_broker.values(topic)[5:] == [b"derived"]


@pytest.mark.usefixtures("installed")
def test_consumer_created_in_a_shadow_request_joins_the_shadow_group(
    kafka_broker: KafkaBroker, topic: str, group: str
) -> None:
    """It reads and commits freely, in ``<group>-shadow``; keyword configuration too."""
    with shadow() as scope:
        consumer = confluent_kafka.Consumer(
            {"bootstrap.servers": kafka_broker.bootstrap}, **{"group.id": group}
        )
        try:
            assert [m.value() for m in read(consumer, topic, 3)] == [b"m0", b"m1", b"m2"]
            consumer.commit(asynchronous=False)
        finally:
            consumer.close()
    assert scope.suppressed == []
    assert kafka_broker.committed(f"{group}-shadow", topic) == {0: 3}
    assert kafka_broker.committed(group, topic) == {0: NONE}


GROUP_KEYS = ("group.id", "group.instance.id", "group_id", "group_instance_id")


@hypothesis_settings(deadline=None)  # a pure function, timed on a machine shared with brokers
@given(
    conf=st.dictionaries(
        st.sampled_from((*GROUP_KEYS, "bootstrap.servers", "client.id", "groupid", "x.group.id")),
        st.one_of(st.none(), st.text(max_size=12), st.integers(), st.booleans()),
    ),
    suffix=st.text(alphabet="abcXYZ019._-", min_size=1, max_size=12),
)
def test_the_shadow_group_rule(conf: dict[str, Any], suffix: str) -> None:
    """Group and member ids get the suffix (never equal to the primary's); nothing else changes."""
    rewritten = shadow_config(conf, suffix)
    assert rewritten.keys() == conf.keys()
    for key, value in conf.items():
        if key in GROUP_KEYS and value not in (None, ""):
            assert rewritten[key] == f"{value}{suffix}" != str(value)
        else:
            assert rewritten[key] is value


@pytest.mark.parametrize("raw", ["", " ", "-shadow ", "-sha dow", "-shädow", "x" * 101, "a/b"])
def test_a_bad_suffix_is_refused_naming_the_setting(raw: str) -> None:
    with pytest.raises(ConfigError, match=f"{ENV}=.* accepted values are 1 to 100 characters"):
        Settings.from_env({ENV: raw})
    with pytest.raises(ConfigError, match=r"kafka_shadow_group_suffix=.* cannot be empty"):
        Settings(kafka_shadow_group_suffix=raw)


def test_the_suffix_setting() -> None:
    assert Settings().kafka_shadow_group_suffix == "-shadow"
    assert Settings.from_env({ENV: ".canary_1"}).kafka_shadow_group_suffix == ".canary_1"
    with pytest.raises(ConfigError, match="kafka_shadow_group_suffix=None"):
        Settings(kafka_shadow_group_suffix=None)  # type: ignore[arg-type]


def test_install_refuses_a_bad_suffix_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "")
    config.reset()
    try:
        with pytest.raises(ConfigError, match=ENV):
            guard_module.install()
        assert confluent_kafka.Consumer is ORIGINAL_CONSUMER
    finally:
        monkeypatch.delenv(ENV)
        config.reset()


@pytest.mark.usefixtures("installed")
def test_a_configured_suffix_names_the_shadow_group(
    kafka_broker: KafkaBroker, topic: str, group: str
) -> None:
    config.configure(kafka_shadow_group_suffix=".canary")
    try:
        with shadow():
            consumer = confluent_kafka.Consumer(consumer_config(kafka_broker, group))
            read(consumer, topic, 1)
            consumer.commit(asynchronous=False)
            consumer.close()
    finally:
        config.reset()
    assert kafka_broker.committed(f"{group}.canary", topic) == {0: 1}
    assert kafka_broker.committed(f"{group}-shadow", topic) == {0: NONE}
