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
import hashlib
import json
import logging
import math
import os
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
from shadowguard.compare._worker_settings import (
    Stats,
    WorkerSettings,
    peak_rss_kb,
    stream_labels,
    stream_settings,
)

__all__ = ["Worker"]

logger = logging.getLogger("shadowguard.compare")


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
    #: What the checkpoint says of the record at ``start - 1`` and of the held records, until
    #: the restore has read them (a topic recreated under the same name shows here).
    expect_last: str = ""
    expect_held: str = ""
    #: The digest of the last record read.
    last: str = ""


def _digest(value: bytes | None) -> bytes:
    return hashlib.blake2b(value or b"", digest_size=8).digest()


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
        digest = _digest(value)
        owned.last = digest.hex()
        where = f"{self.source.topic}[{message.partition()}]@{offset}"
        if offset < owned.start:  # replaying what the checkpoint still held
            held = owned.restore.pop(offset, None)
            if held is not None:
                record = read_record(value or b"", _Strict(where), where)
                assert record is not None
                try:
                    owned.join.restore(offset, record, held[1], digest)
                except ValueError as exc:
                    raise _mismatch(where, str(exc)) from None
            if offset == owned.start - 1:
                self._restored(owned, where)
            return
        if owned.restore:
            self._gone(owned, where)
        now = time.monotonic()
        self._first_at = self._first_at or now
        self._last_at = now
        self.stats.records += 1
        partial = owned.join.partial
        skipped = sum(partial.skipped.values())
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
                owned.join.add(offset, record, digest)
                self.stats.pairs += partial.totals.pairs + partial.totals.noise_pairs - before
        self.stats.skipped += sum(partial.skipped.values()) - skipped
        waiting = sum(o.join.held for o in self.owned.values())
        self.stats.max_pending = max(self.stats.max_pending, waiting)

    def _restored(self, owned: _Owned, where: str) -> None:
        """The checkpoint's last record is read again: is it the same topic?"""
        if owned.expect_last and owned.last != owned.expect_last:
            raise _mismatch(where, "this is not the record it ended with")
        if (
            owned.expect_held
            and not owned.restore
            and owned.join.held_digest() != owned.expect_held
        ):
            raise _mismatch(where, "the records it held are not these")
        owned.expect_last = owned.expect_held = ""

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
            clock=[join.streak, join.streak_max],
            last_digest=owned.last,
            held_digest=join.held_digest(),
        )
        delivered: list[Any] = []
        value = json.dumps(segment.to_json(), allow_nan=False).encode()
        too_large = CompareError(
            f"the checkpoint of partition {number} ({len(value):,} bytes) is larger than the "
            "broker takes in one message: raise the results topic's max.message.bytes, or "
            "capture route templates rather than raw paths (it grows with the routes)"
        )
        try:
            self.producer.produce(
                self.settings.results,
                value,
                key=f"{self.source.topic}/{number}".encode(),
                on_delivery=lambda error, _message: delivered.append(error),
            )
        except self._cimpl.KafkaException as exc:
            if exc.args[0].code() == self._cimpl.KafkaError.MSG_SIZE_TOO_LARGE:
                raise too_large from None
            delivered.append(exc.args[0])
        except BufferError as exc:
            delivered.append(exc)
        else:
            self.producer.flush(30)
        error: Any = delivered[0] if delivered else None
        if (
            callable(getattr(error, "code", None))
            and error.code() == self._cimpl.KafkaError.MSG_SIZE_TOO_LARGE
        ):
            raise too_large
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
                owned.join.streak, owned.join.streak_max = int(tail.clock[0]), tail.clock[1]
                owned.restore = {offset: (role, flags) for offset, role, flags in tail.pending}
                owned.expect_last, owned.expect_held = tail.last_digest, tail.held_digest
                # From the first held record, or the last one read: both are checked.
                owned.next = min(owned.restore, default=tail.end)
                if tail.end > 0:
                    owned.next = min(owned.next, tail.end - 1)
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


def _mismatch(where: str, why: str) -> CompareError:
    return CompareError(
        f"{where}: the checkpoint does not match the topic ({why}); was the topic recreated? "
        "Compare it under a new --group"
    )


class _Strict:
    """A held record that cannot be read again: the checkpoint does not match the topic."""

    def __init__(self, where: str) -> None:
        self.where = where

    def skip(self, reason: str, where: str) -> None:
        raise CompareError(f"{where}: a checkpoint held this record, but it is {reason}")
