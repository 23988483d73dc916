"""A compare worker: one member of a consumer group joining the pairs of its partitions.

Kafka assigns the partitions and moves them when workers come and go. For each partition it
gets, the worker restores the partition's last checkpoint (the longest segment chain on the
results topic, see :mod:`._kafka`): it seeks to the first record that checkpoint still held,
holds those records again without counting them, and goes on from the checkpoint's end. It
checkpoints a partition every ``segment_records`` records or ``segment_seconds``, when the
partition is taken away, and when it stops; a checkpoint is on the results topic (delivered)
before the next one builds on it. Delivery is at least once: a worker killed between
checkpoints leaves the records since its last one to the next owner, which reads them again
from that checkpoint; nothing is counted twice because only one chain is ever merged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import resource
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shadowguard._fieldpaths import IgnoreRules
from shadowguard.compare._diff import Differ
from shadowguard.compare._errors import CompareError
from shadowguard.compare._join import Labels
from shadowguard.compare._kafka import (
    KafkaSource,
    Segment,
    choose_chain,
    client_config,
    clients,
    ensure_topic,
    read_segments,
)
from shadowguard.compare._options import Options
from shadowguard.compare._sources import read_record
from shadowguard.compare._stream import PartitionJoin, unpaired_role

__all__ = ["Worker", "WorkerSettings", "stream_labels", "stream_settings"]

logger = logging.getLogger("shadowguard.compare")
_ROLES = ("baseline", "candidate", "noise")


def stream_labels(options: Options) -> Labels:
    """The sides a worker joins: given up front (``--candidate`` default ``shadow``)."""
    noise = options.noise
    chosen = None if noise is None or noise.lower() in ("", "none") else noise
    labels = Labels(options.baseline or "primary", options.candidate or "shadow", chosen)
    names = [label for _, label in labels.roles()]
    if len(set(names)) != len(names):
        raise CompareError(f"the sides must differ: {', '.join(names)}")
    return labels


def stream_settings(options: Options, expire: float) -> dict[str, Any]:
    """What shapes a worker's results: every worker of a group must run with the same."""
    labels = stream_labels(options)
    return {
        "labels": {role: getattr(labels, role) for role in _ROLES},
        "window_seconds": options.window,
        "expire_seconds": expire,
        "ignore": list(options.ignore),
        "headers": list(options.header) or None,
        "examples": options.examples,
        "max_record_bytes": options.max_record_bytes,
    }


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker runs (besides the comparison's own options)."""

    group: str
    results: str
    expire: float
    idle_exit: float | None = None
    segment_records: int = 20_000
    segment_seconds: float = 5.0
    session_timeout_ms: int = 10_000


@dataclass
class _Owned:
    """A partition this worker holds: its join and where its current stretch starts."""

    join: PartitionJoin
    prev: str | None
    start: int
    next: int
    #: offset -> (role, flags) of the records the checkpoint held, until read again.
    restore: dict[int, tuple[int, int]] = field(default_factory=dict)
    since: float = field(default_factory=time.monotonic)


@dataclass
class Stats:
    """What a worker did, written with ``--stats`` when it stops."""

    records: int = 0
    pairs: int = 0
    seconds: float = 0.0
    partitions: list[int] = field(default_factory=list)
    rebalances: int = 0
    max_pending: int = 0
    max_rss_kb: int = 0
    checkpoints: int = 0
    skipped: int = 0
    #: Records read by label: a side named wrongly shows here as a label never joined.
    by_label: dict[str, int] = field(default_factory=dict)
    #: When each assignment came (epoch seconds): rebalance times.
    assigned_at: list[float] = field(default_factory=list)


def peak_rss_kb() -> int:
    """This process's peak resident size (``VmHWM``; ``ru_maxrss`` can carry a parent's)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


class Worker:
    """Join the pairs of the partitions Kafka assigns; write segments to the results topic."""

    def __init__(self, source: KafkaSource, options: Options, settings: WorkerSettings) -> None:
        self.source = source
        self.options = options
        self.settings = settings
        self.labels = stream_labels(options)
        self.fingerprint = stream_settings(options, settings.expire)
        differ = Differ(IgnoreRules(options.ignore), frozenset(options.header) or None)
        self._new_join: Callable[[], PartitionJoin] = lambda: PartitionJoin(
            self.labels, options.window, settings.expire, differ, options.examples
        )
        self.owned: dict[int, _Owned] = {}
        self.stats = Stats()
        self.stop = threading.Event()
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._first_at: float | None = None
        self._last_at: float | None = None
        cimpl = clients()
        self._cimpl = cimpl
        common = client_config(source.bootstrap)
        self.consumer = cimpl.Consumer(
            common
            | {
                "group.id": settings.group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": settings.session_timeout_ms,
                "heartbeat.interval.ms": max(100, settings.session_timeout_ms // 5),
                # librdkafka prefetches up to 64 MiB by default: bound it with the rest.
                "queued.max.messages.kbytes": 16 * 1024,
            }
        )
        self.producer = cimpl.Producer(
            common
            | {
                "linger.ms": 5,
                "compression.type": "lz4",
                "message.max.bytes": 32 * 1024 * 1024,
                "enable.idempotence": True,
            }
        )

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> Stats:
        """Work until :attr:`stop` is set or, with ``idle_exit``, no record came for that long."""
        topics = self.consumer.list_topics(self.source.topic, timeout=10).topics
        found = topics.get(self.source.topic)
        if found is None or found.error is not None:
            raise CompareError(f"source {self.source.spec!r}: no topic {self.source.topic!r}")
        ensure_topic(self.source.bootstrap, self.settings.results)
        self.consumer.subscribe(
            [self.source.topic],
            on_assign=self._assigned,
            on_revoke=self._revoked,
            on_lost=self._lost,
        )
        # The first assignment takes a group join (about half the session timeout on some
        # brokers): idle time counts from then, or from twice the session timeout at most.
        idle_since = time.monotonic() + 2 * self.settings.session_timeout_ms / 1000
        try:
            while not self.stop.is_set():
                rebalances = self.stats.rebalances
                messages = self.consumer.consume(num_messages=500, timeout=0.5)
                if messages or self.stats.rebalances != rebalances:
                    idle_since = time.monotonic()
                for message in messages:
                    self._message(message)
                self._checkpoint_due()
                idle = self.settings.idle_exit
                if idle is not None and time.monotonic() - idle_since > idle:
                    break
            self._checkpoint_all()
        finally:
            self.stats.partitions = sorted(self.owned)
            self.consumer.close()
            self.producer.flush(10)
        self.stats.max_rss_kb = peak_rss_kb()
        if self._first_at is not None and self._last_at is not None:
            self.stats.seconds = round(self._last_at - self._first_at, 3)
        return self.stats

    def install_signals(self) -> None:
        """SIGTERM and SIGINT stop the worker after a last checkpoint."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop.set())

    def unjoined_labels(self) -> list[str]:
        """Labels read but joined to no side, when a side got no record: a misnamed side."""
        sides = {label for _, label in self.labels.roles()}
        if all(self.stats.by_label.get(label) for label in sides):
            return []
        return sorted(set(self.stats.by_label) - sides)

    def _message(self, message: Any) -> None:
        error = message.error()
        if error is not None:
            if not error.retriable() and error.fatal():
                raise CompareError(f"Kafka: {error.str()}")
            return
        owned = self.owned.get(message.partition())
        offset = message.offset()
        if owned is None or offset < owned.next:
            return  # not ours (any more), or read again after a seek
        owned.next = offset + 1
        value = message.value()
        where = f"{self.source.topic}[{message.partition()}]@{offset}"
        if offset < owned.start:  # replaying what the checkpoint still held
            held = owned.restore.pop(offset, None)
            if held is not None:
                record = read_record(value or b"", _Strict(where), where)
                assert record is not None
                try:
                    owned.join.restore(offset, record, held[1])
                except ValueError as exc:
                    raise CompareError(
                        f"{where}: the checkpoint does not match the topic ({exc}); was the "
                        "topic recreated? Compare it under a new --group"
                    ) from None
            return
        if owned.restore:
            self._gone(owned, where)
        now = time.monotonic()
        self._first_at = self._first_at or now
        self._last_at = now
        self.stats.records += 1
        partial = owned.join.partial
        if value is None:
            partial.skip("invalid record", f"{where}: no value")
        elif len(value) > self.options.max_record_bytes:
            partial.skip(f"record over {self.options.max_record_bytes} bytes", where)
        else:
            record = read_record(value, partial, where)
            if record is not None:
                label = record["label"]
                self.stats.by_label[label] = self.stats.by_label.get(label, 0) + 1
                before = partial.totals.pairs + partial.totals.noise_pairs
                owned.join.add(offset, record)
                self.stats.pairs += partial.totals.pairs + partial.totals.noise_pairs - before
        waiting = sum(o.join.held for o in self.owned.values())
        self.stats.max_pending = max(self.stats.max_pending, waiting)

    def _gone(self, owned: _Owned, where: str) -> None:
        """Held records no longer on the topic (retention removed them): unpaired now."""
        partial = owned.join.partial
        for role, flags in owned.restore.values():
            side = unpaired_role(role, flags)
            if side is not None:
                partial.totals.unpaired[side] += 1
            partial.skip("held record no longer on the topic", where)
        logger.warning(
            "shadowguard compare: %d held records of %s are no longer on the topic",
            len(owned.restore),
            where.rsplit("@", 1)[0],
        )
        owned.restore.clear()

    # -- checkpoints --------------------------------------------------------------------------

    def _checkpoint_due(self) -> None:
        now = time.monotonic()
        for number, owned in self.owned.items():
            fresh = owned.next - owned.start
            if fresh > 0 and (
                fresh >= self.settings.segment_records
                or now - owned.since >= self.settings.segment_seconds
            ):
                self._checkpoint(number, owned)

    def _checkpoint_all(self) -> None:
        for number, owned in self.owned.items():
            self._checkpoint(number, owned)

    def _checkpoint(self, number: int, owned: _Owned) -> None:
        """Write the partition's segment; on success the next stretch starts after it."""
        owned.since = time.monotonic()
        if owned.next <= owned.start:
            return  # nothing read since the last checkpoint (or still replaying it)
        join = owned.join
        pending = []
        examples: dict[str, list[str]] = {}
        for held in join.held_records():
            pending.append([held.offset, held.role, held.flags])
            role = unpaired_role(held.role, held.flags)
            if role is not None and len(ids := examples.setdefault(role, [])) < 5:
                ids.append(held.record["request_id"])
        segment = Segment(
            id=uuid.uuid4().hex,
            prev=owned.prev,
            topic=self.source.topic,
            partition=number,
            start=owned.start,
            end=owned.next,
            settings=self.fingerprint,
            watermark=join.watermark if math.isfinite(join.watermark) else None,
            pending=pending,
            pending_examples=examples,
            partial=join.partial.to_json(),
            worker=self.name,
        )
        delivered: list[Any] = []
        self.producer.produce(
            self.settings.results,
            json.dumps(segment.to_json(), allow_nan=False).encode(),
            key=f"{self.source.topic}/{number}".encode(),
            on_delivery=lambda error, _message: delivered.append(error),
        )
        self.producer.flush(30)
        if not delivered or delivered[0] is not None:
            logger.warning(
                "shadowguard compare: checkpoint of partition %d not written (%s); its "
                "records stay in the next one",
                number,
                delivered[0] if delivered else "no delivery report within 30 s",
            )
            return
        join.take_partial()
        owned.prev = segment.id
        owned.start = owned.next
        self.stats.checkpoints += 1
        tp = self._cimpl.TopicPartition(self.source.topic, number, owned.next)
        with contextlib.suppress(self._cimpl.KafkaException):
            self.consumer.commit(offsets=[tp], asynchronous=True)  # for lag monitoring only

    # -- rebalances -----------------------------------------------------------------------------

    def _assigned(self, consumer: Any, partitions: list[Any]) -> None:
        self.stats.rebalances += 1
        self.stats.assigned_at.append(round(time.time(), 3))
        numbers = [tp.partition for tp in partitions]
        found = read_segments(
            self.source.bootstrap, self.settings.results, self.source.topic, numbers
        )
        for tp in partitions:
            chain = choose_chain(found.by_partition.get((self.source.topic, tp.partition), []))
            owned = _Owned(self._new_join(), None, 0, 0)
            if chain:
                tail = chain[-1]
                if tail.settings != self.fingerprint:
                    self.stop.set()
                    raise CompareError(
                        f"the results in {self.settings.results!r} were made with other "
                        f"settings ({tail.settings}); run every worker of group "
                        f"{self.settings.group!r} with the same options, or use a new --group"
                    )
                owned.prev = tail.id
                owned.start = tail.end
                owned.join.watermark = -math.inf if tail.watermark is None else tail.watermark
                owned.restore = {offset: (role, flags) for offset, role, flags in tail.pending}
                owned.next = min(owned.restore, default=tail.end)
                tp.offset = owned.next
            else:
                tp.offset = self._cimpl.OFFSET_BEGINNING
                owned.start = owned.next = -1
            self.owned[tp.partition] = owned
        consumer.assign(partitions)

    def _revoked(self, consumer: Any, partitions: list[Any]) -> None:
        for tp in partitions:
            owned = self.owned.pop(tp.partition, None)
            if owned is not None:
                self._checkpoint(tp.partition, owned)

    def _lost(self, consumer: Any, partitions: list[Any]) -> None:
        # Another worker may own them already: a checkpoint now would only fork the chain.
        for tp in partitions:
            self.owned.pop(tp.partition, None)


class _Strict:
    """A held record that cannot be read again: the checkpoint does not match the topic."""

    def __init__(self, where: str) -> None:
        self.where = where

    def skip(self, reason: str, where: str) -> None:
        raise CompareError(f"{where}: a checkpoint held this record, but it is {reason}")
