"""confluent-kafka guard, validation: shadow produce() accepts, refuses and reports as the client does.

Each property compares the guarded producer in shadow with the real client (primary, or
an unguarded producer) on the Tansu broker of the session (tests/peers/kafka.py).
"""

from __future__ import annotations

from typing import Any

import confluent_kafka
import pytest
from confluent_kafka import KafkaException
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowguard import shadow
from shadowguard.integrations import confluent_kafka as guard_module
from tests.integrations._support import guarded_producer
from tests.peers.kafka import KafkaBroker

SINK = "confluent_kafka"


@pytest.fixture
def topic(kafka_broker: KafkaBroker) -> str:
    return kafka_broker.create_topic()


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


CALLBACK_FORMS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((), {"on_delivery": "on_delivery"}),
    ((), {"callback": "callback"}),
    ((), {"callback": "callback", "on_delivery": "on_delivery"}),
    ((), {"callback": None, "on_delivery": "on_delivery"}),
    ((None, -1, None, "on_delivery"), {}),
    ((None, -1, "callback", "on_delivery"), {}),
    ((), {}),
]


@pytest.mark.parametrize("how", ["install", "guard"])
def test_shadow_serves_the_callback_the_client_would(kafka_broker: KafkaBroker, how: str) -> None:
    """callback wins over on_delivery, even given as None; the configured one is the default."""
    fired: list[tuple[str, str]] = []

    def callback(tag: str) -> Any:
        return lambda error, message: fired.append((tag, message.value().decode()))

    config = kafka_broker.config(on_delivery=callback("config"))
    raw = confluent_kafka.Producer(config)
    guarded = guarded_producer(how, config)
    try:
        for n, (args, kwargs) in enumerate(CALLBACK_FORMS):
            given_args = [callback(a) if a in ("callback", "on_delivery") else a for a in args]
            given_kwargs = {k: callback(v) if isinstance(v, str) else v for k, v in kwargs.items()}
            raw.produce("orders", f"primary-{n}".encode(), *given_args, **given_kwargs)
            raw.flush(10)
            with shadow():
                guarded.produce("orders", f"shadow-{n}".encode(), *given_args, **given_kwargs)
                guarded.flush(10)
    finally:
        guard_module.uninstall()
    primary = [(tag, value.replace("primary", "?")) for tag, value in fired if "primary" in value]
    shadowed = [(tag, value.replace("shadow", "?")) for tag, value in fired if "shadow" in value]
    assert shadowed == primary
    assert len(primary) == len(CALLBACK_FORMS)
