"""confluent-kafka guard, Schema Registry: in shadow, serializers look schemas up and never register.

The registry is a loopback fake that keeps every request (tests/peers/schema_registry.py);
messages are read back from the Tansu broker of the session (tests/peers/kafka.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import confluent_kafka
import pytest

import shadowguard
from shadowguard import Kind, shadow
from tests.peers.kafka import DeliveryReports, KafkaBroker
from tests.peers.schema_registry import FakeSchemaRegistry

SINK = "confluent_kafka"
SCHEMA = json.dumps({"type": "object", "properties": {"n": {"type": "integer"}}})


@pytest.fixture
def topic(kafka_broker: KafkaBroker) -> str:
    return kafka_broker.create_topic()


@pytest.fixture
def schema_registry() -> Iterator[FakeSchemaRegistry]:
    with FakeSchemaRegistry() as registry:
        yield registry


def json_producer(kafka_broker: KafkaBroker, registry: FakeSchemaRegistry) -> Any:
    """A SerializingProducer whose JSON Schema serializer registers its schema on first use."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.json_schema import JSONSerializer

    client = SchemaRegistryClient({"url": registry.url})
    serializer = JSONSerializer(SCHEMA, client, conf={"auto.register.schemas": True})
    return confluent_kafka.SerializingProducer(
        kafka_broker.config(**{"value.serializer": serializer})
    )


@pytest.mark.usefixtures("installed")
def test_schema_registry_serializer_never_registers_in_shadow(
    kafka_broker: KafkaBroker, topic: str, schema_registry: FakeSchemaRegistry
) -> None:
    def make_producer() -> Any:
        return json_producer(kafka_broker, schema_registry)

    reports = DeliveryReports()
    with shadow() as scope:
        with pytest.raises(confluent_kafka.error.ValueSerializationError) as failed:
            make_producer().produce(topic, value={"n": 1})
        blocked = failed.value.__context__
        assert isinstance(blocked, shadowguard.ShadowSideEffectBlocked)
        assert "auto.register.schemas" in str(blocked)
    assert schema_registry.requests == [("lookup", f"{topic}-value")]
    assert scope.counts["call"] == 1

    primary = make_producer()
    primary.produce(topic, value={"n": 2})
    primary.flush(10)
    assert schema_registry.requests[1:] == [("register", f"{topic}-value")]

    with shadow():
        producer = make_producer()
        producer.produce(topic, value={"n": 3}, on_delivery=reports)
        with pytest.raises(confluent_kafka.error.ValueSerializationError):
            producer.produce(topic, value={"n": "not an integer"})
        producer.flush(10)
    assert schema_registry.requests[2:] == [("lookup", f"{topic}-value")]
    (stored_message,) = kafka_broker.messages(topic)
    (_, _, shadow_message) = reports.seen[0]
    # Same framing (magic byte and schema id) as the primary message on the broker.
    assert shadow_message.value()[:5] == stored_message.value()[:5]
    assert json.loads(shadow_message.value()[5:]) == {"n": 3}


@pytest.mark.asyncio
@pytest.mark.usefixtures("installed")
async def test_async_schema_registry_client_only_looks_up_in_shadow(
    schema_registry: FakeSchemaRegistry,
) -> None:
    from confluent_kafka.schema_registry import AsyncSchemaRegistryClient, Schema

    client = AsyncSchemaRegistryClient({"url": schema_registry.url})
    schema = Schema(json.dumps({"type": "object"}), "JSON")
    with shadow(), pytest.raises(shadowguard.ShadowSideEffectBlocked):
        await client.register_schema("orders-value", schema)
    assert schema_registry.requests == [("lookup", "orders-value")]
    assert await client.register_schema("orders-value", schema) == 7
    fresh = AsyncSchemaRegistryClient({"url": schema_registry.url})
    with shadow():
        assert await fresh.register_schema("orders-value", schema) == 7
    assert schema_registry.requests[1:] == [
        ("register", "orders-value"),
        ("lookup", "orders-value"),
    ]


@pytest.mark.usefixtures("installed")
def test_refused_registration_is_recorded_as_blocked(
    kafka_broker: KafkaBroker, topic: str, schema_registry: FakeSchemaRegistry
) -> None:
    """The refusal is counted (action "blocked"); the lookup that works is a suppression."""
    with shadow() as scope:
        producer = json_producer(kafka_broker, schema_registry)
        with pytest.raises(confluent_kafka.error.ValueSerializationError) as failed:
            producer.produce(topic, value={"n": 1})
        producer.flush(10)
    refusal, attempt = scope.suppressed
    assert (refusal.kind, refusal.target) == (Kind.CALL, "SchemaRegistryClient.register_schema")
    assert refusal.detail["action"] == "blocked"
    assert refusal.blocked
    assert refusal.detail["subject"] == f"{topic}-value"
    assert refusal.error is failed.value.__context__
    assert isinstance(refusal.error, shadowguard.ShadowSideEffectBlocked)
    assert (attempt.kind, attempt.detail["action"]) == (Kind.KAFKA_PRODUCE, "suppressed")
    assert attempt.error is failed.value
    assert kafka_broker.values(topic) == []

    primary = json_producer(kafka_broker, schema_registry)
    primary.produce(topic, value={"n": 2})
    primary.flush(10)
    with shadow() as scope:
        producer = json_producer(kafka_broker, schema_registry)
        producer.produce(topic, value={"n": 3})
        producer.flush(10)
    assert [(s.kind, s.detail["action"]) for s in scope.suppressed] == [
        (Kind.CALL, "suppressed"),
        (Kind.KAFKA_PRODUCE, "suppressed"),
    ]
    assert [json.loads(v[5:]) for v in kafka_broker.values(topic) if v] == [{"n": 2}]
