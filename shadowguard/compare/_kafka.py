"""Kafka for the compare workers: the source URL, the clients, and the segments they write.

A worker writes a *segment* to the results topic each time it checkpoints a partition: the
tallies of the records it read since the previous segment (a :class:`~._partial.Partial`),
the offsets where that stretch starts and ends, the partition's watermark and the records it
still holds, and the id of the previous segment. Segments of a partition form chains; any
chain from a first segment is one sequential pass over the partition, so the longest valid
chain (a worker that died or was fenced leaves a shorter branch) is the partition's result,
with every record counted once however often Kafka delivered it.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from shadowguard.compare._errors import CompareError
from shadowguard.compare._partial import Partial

__all__ = [
    "SEGMENT_KIND",
    "KafkaSource",
    "Segment",
    "choose_chain",
    "client_config",
    "clients",
    "ensure_topic",
    "is_kafka",
    "parse_source",
    "read_segments",
    "results_topic",
]

SEGMENT_KIND = "shadowguard.compare.segment"
SEGMENT_VERSION = 1
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}\Z")
_HOST = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}\Z")
_ACCEPTED = "kafka://HOST:PORT[,HOST:PORT...]/TOPIC (topic: letters, digits, '.', '_', '-')"


@dataclass(frozen=True)
class KafkaSource:
    """Where capture records are: the brokers and the topic."""

    spec: str
    bootstrap: str
    topic: str


def is_kafka(spec: str) -> bool:
    """Does ``spec`` name a Kafka topic?"""
    return spec.strip().lower().startswith("kafka://")


def parse_source(spec: str) -> KafkaSource:
    """``kafka://HOST:PORT/TOPIC``; :class:`CompareError` naming the accepted form otherwise."""
    rest = spec.strip()[len("kafka://") :]
    hosts, _, topic = rest.partition("/")
    brokers = [h for h in hosts.split(",") if h]
    if not brokers or not all(_HOST.match(h) for h in brokers) or not _TOPIC.match(topic):
        raise CompareError(f"source {spec!r} is not valid: accepted: {_ACCEPTED}")
    return KafkaSource(spec, ",".join(brokers), topic)


def results_topic(topic: str, group: str, given: str | None) -> str:
    """The results topic: ``--results``, else ``TOPIC.compare.GROUP``."""
    name = given if given is not None else f"{topic}.compare.{group}"
    if not _TOPIC.match(name):
        what = "--results" if given is not None else "the results topic made of --group"
        raise CompareError(
            f"{what} {name!r} is not a valid topic name: letters, digits, '.', '_', '-'"
            + ("" if given is not None else "; choose one with --results")
        )
    return name


#: The clients' own log lines (librdkafka's): shown when the application configures logging,
#: never printed by the command line on its own (its one-line errors say what failed).
CLIENT_LOGGER = logging.getLogger("shadowguard.compare.kafka")
CLIENT_LOGGER.addHandler(logging.NullHandler())


def client_config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    """The configuration every client of the compare workers starts from."""
    return {"bootstrap.servers": bootstrap, "logger": CLIENT_LOGGER, **extra}


def clients() -> Any:
    """``confluent_kafka.cimpl`` (the client's own classes, never a guarded one)."""
    try:
        from confluent_kafka import cimpl
    except ImportError:
        raise CompareError(
            "kafka:// sources need confluent-kafka: pip install 'shadowguard[kafka]'"
        ) from None
    return cimpl


def ensure_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    """Create topic ``name`` unless it exists."""
    from confluent_kafka.admin import AdminClient

    cimpl = clients()
    admin = AdminClient(client_config(bootstrap))
    if name in admin.list_topics(timeout=10).topics:
        return
    futures = admin.create_topics([cimpl.NewTopic(name, partitions, 1)], operation_timeout=10)
    try:
        futures[name].result(timeout=15)
    except cimpl.KafkaException as exc:
        if exc.args[0].code() != cimpl.KafkaError.TOPIC_ALREADY_EXISTS:
            raise CompareError(f"cannot create topic {name!r}: {exc.args[0].str()}") from None


@dataclass
class Segment:
    """One checkpoint of one partition, as read from the results topic."""

    id: str
    prev: str | None
    topic: str
    partition: int
    start: int
    end: int
    settings: dict[str, Any]
    watermark: float | None
    #: ``[offset, role, flags]`` of every record still held at ``end``.
    pending: list[list[int]]
    pending_examples: dict[str, list[str]]
    partial: dict[str, Any]
    order: int = 0
    worker: str = ""
    #: The partition's clock state (see :class:`._stream.PartitionJoin`): a run of records
    #: that disagreed with the watermark, and the latest start among them.
    clock: list[float] = field(default_factory=lambda: [0, 0.0])
    #: Digest of the record at ``end - 1`` and of the held records: a restore checks them.
    last_digest: str = ""
    held_digest: str = ""
    #: ``partial`` read back (set by :meth:`from_json`, which validates it).
    tallies: Partial | None = None

    def to_json(self) -> dict[str, Any]:
        """The message value (without ``order``, which is where it was read)."""
        return {
            "kind": SEGMENT_KIND,
            "v": SEGMENT_VERSION,
            "id": self.id,
            "prev": self.prev,
            "topic": self.topic,
            "partition": self.partition,
            "start": self.start,
            "end": self.end,
            "settings": self.settings,
            "watermark": self.watermark,
            "pending": _encode_pending(self.pending),
            "pending_examples": self.pending_examples,
            "partial": self.partial,
            "clock": self.clock,
            "last_digest": self.last_digest,
            "held_digest": self.held_digest,
            "worker": self.worker,
            "written_at": time.time(),
        }

    @classmethod
    def from_json(cls, data: Any, order: int) -> Segment:
        """A segment from its message value; ValueError when it is not a valid one.

        Everything a worker or the report will use is checked here (the settings, the
        partial tallies), so that a malformed or forged message is one unreadable segment,
        never a failed report.
        """
        if not isinstance(data, dict) or data.get("kind") != SEGMENT_KIND:
            raise ValueError("not a shadowguard compare segment")
        if data.get("v") != SEGMENT_VERSION:
            raise ValueError(f"unknown segment version {data.get('v')!r}")
        try:
            settings = check_settings(data["settings"])
            segment = cls(
                id=str(data["id"]),
                prev=None if data["prev"] is None else str(data["prev"]),
                topic=str(data["topic"]),
                partition=_int(data["partition"]),
                start=_int(data["start"]),
                end=_int(data["end"]),
                settings=settings,
                watermark=None if data["watermark"] is None else _finite(data["watermark"]),
                pending=_decode_pending(data["pending"]),
                pending_examples={
                    str(k): [str(i) for i in v] for k, v in data["pending_examples"].items()
                },
                partial=dict(data["partial"]),
                order=order,
                worker=str(data.get("worker", "")),
                clock=[_int(data["clock"][0]), _finite(data["clock"][1])],
                last_digest=str(data["last_digest"]),
                held_digest=str(data["held_digest"]),
            )
            segment.tallies = Partial.from_json(segment.partial, settings["examples"])
        except Exception as exc:
            raise ValueError(f"malformed segment: {type(exc).__name__}: {exc}"[:300]) from None
        if segment.end < segment.start or segment.start < -1:
            raise ValueError("malformed segment: it ends before it starts")
        return segment


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"not a whole number: {value!r}")
    return value


def _finite(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {value!r}")
    return number


def check_settings(data: Any) -> dict[str, Any]:
    """A segment's settings as a worker wrote them; TypeError/ValueError otherwise."""
    labels = data["labels"]
    if not (
        isinstance(labels, dict)
        and isinstance(labels.get("baseline"), str)
        and isinstance(labels.get("candidate"), str)
        and (labels.get("noise") is None or isinstance(labels["noise"], str))
    ):
        raise TypeError("labels")
    if data["window_seconds"] is not None:
        _finite(data["window_seconds"])
    _finite(data["expire_seconds"])
    if _int(data["examples"]) < 0 or _int(data["max_record_bytes"]) < 1:
        raise ValueError("examples or max_record_bytes")
    headers = data["headers"]
    for names in (data["ignore"], [] if headers is None else headers):
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise TypeError("ignore or headers")
    return dict(data)


def _encode_pending(pending: list[list[int]]) -> dict[str, Any]:
    """Held records, compactly: offset gaps, and one letter per record for side and flags.

    A segment holds every record of its partition's window; this keeps it a few bytes per
    record, well under a broker's message size limit.
    """
    gaps, previous = [], 0
    for offset, _, _ in pending:
        gaps.append(offset - previous)
        previous = offset
    codes = "".join(chr(97 + role * 4 + flags) for _, role, flags in pending)
    return {"gaps": gaps, "codes": codes}


def _decode_pending(data: Any) -> list[list[int]]:
    gaps, codes = data["gaps"], data["codes"]
    if not isinstance(codes, str) or len(gaps) != len(codes):
        raise ValueError("pending gaps and codes differ in length")
    pending, offset = [], 0
    for gap, code in zip(gaps, codes, strict=True):
        offset += int(gap)
        value = ord(code) - 97
        if not 0 <= value < 12:
            raise ValueError(f"pending code {code!r}")
        pending.append([offset, value // 4, value % 4])
    return pending


@dataclass
class Segments:
    """The segments read from a results topic, by (topic, partition); the unreadable counted."""

    by_partition: dict[tuple[str, int], list[Segment]] = field(default_factory=dict)
    unreadable: int = 0
    first_problem: str = ""


def read_segments(
    bootstrap: str, results: str, topic: str, partitions: Iterable[int] | None = None
) -> Segments:
    """Every segment of ``topic`` in ``results`` (only ``partitions`` when given)."""
    cimpl = clients()
    wanted = None if partitions is None else set(partitions)
    consumer = cimpl.Consumer(
        client_config(
            bootstrap,
            **{
                "group.id": "shadowguard-compare-reader",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            },
        )
    )
    found = Segments()
    try:
        metadata = consumer.list_topics(results, timeout=10).topics.get(results)
        if metadata is None or metadata.error is not None:
            return found
        numbers = sorted(metadata.partitions)
        consumer.assign([cimpl.TopicPartition(results, p, cimpl.OFFSET_BEGINNING) for p in numbers])
        at_end: set[int] = set()
        quiet_until = None
        while True:
            message = consumer.poll(0.2)
            if message is None:
                # Partition EOF can come before a just-written segment is visible: wait a
                # little longer once every partition said EOF.
                if len(at_end) == len(numbers):
                    quiet_until = quiet_until or time.monotonic() + 0.5
                    if time.monotonic() >= quiet_until:
                        return found
                continue
            error = message.error()
            if error is not None:
                if error.code() == cimpl.KafkaError._PARTITION_EOF:
                    at_end.add(message.partition())
                    continue
                raise CompareError(f"reading {results!r}: {error.str()}")
            quiet_until = None
            _take(found, message, topic, wanted)
    finally:
        consumer.close()


def _take(found: Segments, message: Any, topic: str, wanted: set[int] | None) -> None:
    order = message.offset() * 1024 + message.partition()
    try:
        segment = Segment.from_json(json.loads(message.value() or b""), order)
    except (ValueError, RecursionError) as exc:
        found.unreadable += 1
        found.first_problem = found.first_problem or f"offset {message.offset()}: {exc}"
        return
    if segment.topic != topic or (wanted is not None and segment.partition not in wanted):
        return
    found.by_partition.setdefault((segment.topic, segment.partition), []).append(segment)


def choose_chain(segments: list[Segment]) -> list[Segment]:
    """The longest valid chain of one partition's segments, first to last (empty if none).

    A chain is valid when every segment's ``prev`` is present and ends where it starts;
    among the valid chains the one reaching furthest wins, then the last written.
    """
    by_id = {s.id: s for s in segments}
    valid: dict[str, bool] = {}

    def is_valid(segment: Segment) -> bool:
        path: list[Segment] = []
        current: Segment | None = segment
        result = True
        while current is not None and current.id not in valid:
            path.append(current)
            if current.prev is None:
                current = None
                break
            parent = by_id.get(current.prev)
            if parent is None or parent.end != current.start or len(path) > len(by_id):
                result = False
                current = None
                break
            current = parent
        if current is not None:
            result = valid[current.id]
        for item in path:
            valid[item.id] = result
        return result

    tails = [s for s in segments if is_valid(s)]
    if not tails:
        return []
    tail: Segment | None = max(tails, key=lambda s: (s.end, s.order))
    chain: list[Segment] = []
    while tail is not None:
        chain.append(tail)
        tail = by_id.get(tail.prev) if tail.prev is not None else None
    chain.reverse()
    return chain
