"""Capture records at scale for the Kafka compare workers: made, produced, and written as JSON lines.

The same records go to a Kafka topic (keyed by request id, as a capture sink writes them)
and to a folder of JSON lines, so that ``shadowguard compare jsonl:///DIR`` on one machine
gives the reference report the workers' merged report is held to. Only the standard library
and ``confluent_kafka`` are imported (lazily), never pytest: the benchmark uses this too.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shadowguard.capture_format import SCHEMA_VERSION, CaptureRecord, encode
from tests._cli import ROOT
from tests.compare._records import write_jsonl

ROUTES = [
    ("GET", "/orders/{id}"),
    ("POST", "/orders"),
    ("GET", "/customers/{id}/orders"),
    ("DELETE", "/orders/{id}"),
]
BASE_TIME = 1_700_000_000.0


def _record(
    request_id: str, label: str, i: int, started_at: float, rng: random.Random, **fields: Any
) -> CaptureRecord:
    method, route = ROUTES[i % len(ROUTES)]
    total = round(10 + (i % 997) * 0.37, 2)
    body: Any = {
        "id": i,
        "customer": {"id": i % 977, "name": "A. Customer", "tier": ("gold", "silver")[i % 2]},
        "items": [
            {"sku": f"sku-{(i * 7 + k) % 1000}", "qty": 1 + k, "price": 9.99} for k in range(3)
        ],
        "total": total,
        "currency": "EUR",
        "created_at": f"2026-01-01T00:00:{rng.random():.6f}",
    }
    record: CaptureRecord = {
        "v": SCHEMA_VERSION,
        "request_id": request_id,
        "request_id_generated": False,
        "label": label,
        "method": method,
        "route": route,
        "path": route.replace("{id}", str(i)),
        "status": 204 if method == "DELETE" else 200,
        "headers": {"content-type": "application/json", "etag": f"W/{rng.random():.8f}"},
        "body": None if method == "DELETE" else body,
        "body_kind": "empty" if method == "DELETE" else "json",
        "body_bytes": 0 if method == "DELETE" else 320,
        "started_at": started_at,
        "duration_ms": rng.lognormvariate(1.5, 0.5),
        "suppressions": {"db.commit": 1} if label != "primary" and method != "GET" else {},
        "validation_errors": [],
        "exception": None,
    }
    record.update(fields)  # type: ignore[typeddict-item]
    return record


def generate(
    pairs: int,
    *,
    singles: int = 0,
    generated: int = 0,
    noise: bool = True,
    step: float = 0.01,
    seed: int = 11,
) -> list[CaptureRecord]:
    """``pairs`` requests seen by primary, candidate (and secondary), in arrival order.

    Seeded findings: the candidate adds a cent to ``total`` on one order in twenty, answers
    500 with an exception on one DELETE in fifty, and is three times slower on
    ``GET /customers/{id}/orders``. Noise: ``created_at`` and the ``etag`` header differ on
    every record of every side. ``singles`` requests were seen by one side only (primary
    and candidate alternately); ``generated`` requests came without a request id, so each
    side made its own (``request_id_generated``). Request ``i`` starts ``i * step`` seconds
    after the first; a shadow side's record arrives up to 20 steps late, so records reach
    the topic a little out of order, as they do from separate processes.
    """
    rng = random.Random(seed)
    labels = ["primary", "candidate", *(["secondary"] if noise else [])]
    timed: list[tuple[float, CaptureRecord]] = []
    for i in range(pairs):
        start = BASE_TIME + i * step
        for label in labels:
            fields: dict[str, Any] = {}
            record = _record(f"req-{i:07d}", label, i, start + (label != "primary") * 0.002, rng)
            if label == "candidate":
                if i % 20 == 0 and isinstance(record["body"], dict):
                    record["body"]["total"] = round(record["body"]["total"] + 0.01, 2)
                if record["method"] == "DELETE" and i % 50 == 3:
                    fields = {"status": 500, "exception": "ValueError", "body_kind": "empty"}
                if record["route"] == "/customers/{id}/orders":
                    fields["duration_ms"] = record["duration_ms"] * 3
            record.update(fields)  # type: ignore[typeddict-item]
            late = rng.uniform(0, 20 * step) if label != "primary" else 0.0
            timed.append((start + late, record))
    # Spread over the same stretch of time as the pairs, so a window has to let them go.
    spacing = max(pairs, 1) / max(singles + generated, 1)
    for j in range(singles):
        i = int(j * spacing)
        label = ("primary", "candidate")[j % 2]
        start = BASE_TIME + i * step + step / 2
        timed.append((start, _record(f"single-{j:07d}", label, i, start, rng)))
    for j in range(generated):
        i = int((singles + j) * spacing) % max(pairs, 1)
        start = BASE_TIME + i * step + step / 3
        for label in labels:
            rid = f"gen-{uuid.UUID(int=rng.getrandbits(128))}"
            record = _record(rid, label, i, start, rng, request_id_generated=True)
            timed.append((start, record))
    timed.sort(key=lambda item: item[0])
    return [record for _, record in timed]


@dataclass(frozen=True)
class Bad:
    """A value that is not a readable record, and the reason the report should give."""

    reason: str
    value: bytes


def bad_values(each: int = 3) -> list[Bad]:
    """``each`` values of each kind: not JSON, not UTF-8, an unknown schema version (99)."""
    out: list[Bad] = []
    for n in range(each):
        out.append(Bad("not JSON", f'{{"v": 1, "request_id": "half-{n}'.encode()))
        out.append(Bad("not JSON", b"\xff\xfe\x80 not utf-8 " + str(n).encode()))
        future = {"v": 99, "request_id": f"future-{n}", "label": "primary", "fields": "new"}
        out.append(Bad("unknown schema version 99", json.dumps(future).encode()))
    return out


def produce(
    bootstrap: str, topic: str, records: Sequence[CaptureRecord], bad: Sequence[Bad] = ()
) -> int:
    """Produce ``records`` (key: request id) and ``bad`` values spread among them; the count.

    Batched (large linger and batches): 100,000 records go out in a few seconds. Raises
    when the broker reported any delivery as failed.
    """
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "message.timeout.ms": 60_000,
            "acks": "all",
        }
    )
    failures: list[str] = []

    def delivered(error: Any, message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    every = max(len(records) // (len(bad) + 1), 1)
    pending = list(bad)
    sent = 0
    for n, record in enumerate(records):
        if pending and n % every == every // 2:
            producer.produce(topic, pending.pop().value, key=f"bad-{n}", on_delivery=delivered)
            sent += 1
        value = encode(record).encode()
        producer.produce(topic, value, key=record["request_id"], on_delivery=delivered)
        sent += 1
        if n % 5_000 == 0:
            producer.poll(0)
    for item in pending:
        producer.produce(topic, item.value, key=b"bad-end", on_delivery=delivered)
        sent += 1
    left = producer.flush(60)
    if left or failures:
        raise RuntimeError(f"{left} undelivered, {len(failures)} failed: {failures[:3]}")
    return sent


def stored(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> dict[int, int]:
    """Messages stored in ``topic`` per partition, read from the beginning of each.

    Reads until ``expected`` arrived and then 0.5 s more (to see any extra), or until
    ``timeout``: the broker's high watermark can lag behind batched produces (PEERS.md).
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"sg-count-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        seen = dict.fromkeys(partitions, 0)
        deadline = time.monotonic() + timeout
        quiet_until: float | None = None
        while time.monotonic() < deadline:
            if quiet_until is not None and time.monotonic() > quiet_until:
                break
            for message in consumer.consume(10_000, 0.2):
                if message.error() is None:
                    seen[message.partition()] += 1
            if sum(seen.values()) >= expected and quiet_until is None:
                quiet_until = time.monotonic() + 0.5
        return seen
    finally:
        consumer.close()


def count(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> int:
    """Messages stored in ``topic`` (see :func:`stored`)."""
    return sum(stored(bootstrap, topic, expected, timeout).values())


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The offset ``group`` committed per partition of ``topic`` (negative: none yet)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    asked = [TopicPartition(topic, p) for p in range(partitions)]
    futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, asked)])
    found = futures[group].result(timeout=10).topic_partitions
    return {tp.partition: tp.offset for tp in found}


def create_topic(bootstrap: str, partitions: int, prefix: str = "capture") -> str:
    """A fresh topic of ``partitions`` partitions (for callers without the test fixture)."""
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=10)
    futures[name].result(timeout=10)
    return name


def write_reference(folder: Path, records: Iterable[CaptureRecord], bad: Sequence[Bad] = ()) -> str:
    """The same records (and bad values, one a line) as JSON lines; the folder's source spec."""
    spec = write_jsonl(folder, records)
    if bad:
        with (folder / "bad.jsonl").open("ab") as out:
            for item in bad:
                out.write(item.value + b"\n")
    return spec


def _env() -> dict[str, str]:
    skip = ("SHADOW", "OTEL_", "DJANGO_SETTINGS_MODULE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


#: How a worker is started: ``shadowguard compare`` in this interpreter.
WORKER_COMMAND = [sys.executable, "-m", "shadowguard", "compare"]


@dataclass
class Worker:
    """A ``shadowguard compare kafka://...`` worker process, its output in files."""

    process: subprocess.Popen[bytes]
    stats_path: Path
    log_path: Path
    started: float = field(default_factory=time.monotonic)
    #: When it was seen to have exited (``time.monotonic()``), by :func:`wait_all`.
    ended: float | None = None
    #: Its peak resident set (VmHWM), sampled by :func:`wait_all` while it ran. Not the
    #: ``ru_maxrss`` of the process: Linux carries that over from the parent across exec.
    peak_rss_kb: int = 0

    def stats(self) -> dict[str, Any]:
        """What the worker wrote with ``--stats`` on exit."""
        data: dict[str, Any] = json.loads(self.stats_path.read_text())
        return data

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        return wait_all([self], timeout)[0]

    def sample_rss(self) -> None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss_kb = max(self.peak_rss_kb, int(line.split()[1]))


def wait_all(workers: Sequence[Worker], timeout: float) -> list[int]:
    """Wait for every worker to exit, sampling their memory; their exit statuses.

    Raises :class:`subprocess.TimeoutExpired` when one still runs after ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while True:
        for worker in workers:
            if worker.ended is None:
                worker.sample_rss()
                if worker.process.poll() is not None:
                    worker.ended = time.monotonic()
        running = [w for w in workers if w.ended is None]
        if not running:
            return [w.process.wait() for w in workers]
        if time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(running[0].process.args, timeout)
        time.sleep(0.05)


def start_worker(
    bootstrap: str, topic: str, group: str, folder: Path, name: str, *options: str
) -> Worker:
    """Start one worker of ``group``; its ``--stats`` file and its output go to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    stats, log = folder / f"{name}.stats.json", folder / f"{name}.log"
    command = [
        *WORKER_COMMAND,
        f"kafka://{bootstrap}/{topic}",
        "--group",
        group,
        "--stats",
        str(stats),
        *options,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=_env())
    return Worker(process, stats, log)


def merged_report(
    bootstrap: str, topic: str, group: str, *options: str
) -> subprocess.CompletedProcess[str]:
    """``shadowguard compare report kafka://... --group GROUP --json OPTIONS``."""
    return subprocess.run(
        [
            *WORKER_COMMAND,
            "report",
            f"kafka://{bootstrap}/{topic}",
            "--group",
            group,
            "--json",
            *options,
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )


def skipped_by_reason(report: dict[str, Any]) -> dict[str, int]:
    """Records the report skipped, by reason, over all its sources."""
    total: dict[str, int] = {}
    for source in report["read"]["sources"]:
        for reason, n in source["skipped"].items():
            total[reason] = total.get(reason, 0) + n
    return total


def _close(a: float | None, b: float | None, relative: float) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= relative * max(abs(a), abs(b))


#: Settings only a merged report has: the sketch's accuracy, how long a record waited.
STREAM_SETTINGS = frozenset({"latency_relative_accuracy", "expire_seconds"})


def differences(merged: dict[str, Any], reference: dict[str, Any]) -> list[str]:
    """Where the workers' merged report departs from the single-machine one; empty if nowhere.

    Counts, rates, paths, statuses and the maximum latency must be equal. Latency
    percentiles come from a sketch of 1 % relative accuracy in the merged report, so they
    may be 1 % off, and a ratio of two of them 2 %. Examples and the order of ties are not compared (they depend on the
    order records arrived in).
    """
    out: list[str] = []

    def same(where: str, got: object, want: object) -> None:
        if got != want:
            out.append(f"{where}: {got!r} != {want!r}")

    for key in ("labels", "pairs", "noise_pairs", "unpaired", "generated_ids"):
        same(key, merged.get(key), reference[key])
    for key in ("differing_pairs", "status_mismatches", "gates"):
        same(key, merged.get(key), reference[key])
    settings = {k: v for k, v in merged.get("settings", {}).items() if k not in STREAM_SETTINGS}
    same("settings", settings, reference["settings"])
    for key in ("records", "skipped", "by_label"):
        same(f"read.{key}", merged.get("read", {}).get(key), reference["read"][key])
    same("read: skipped by reason", skipped_by_reason(merged), skipped_by_reason(reference))
    routes = {(r["method"], r["route"]): r for r in merged.get("routes", [])}
    wanted = {(r["method"], r["route"]): r for r in reference["routes"]}
    same("routes", sorted(routes), sorted(wanted))
    exact = [
        *("pairs", "noise_pairs", "differing_pairs", "diff_rate"),
        *("status_mismatches", "noise_status_mismatches", "bodies_not_compared"),
        *("status", "error_rate", "error_rate_change", "exceptions", "suppressions"),
        "latency_flagged",
    ]
    for route in sorted(routes.keys() & wanted.keys()):
        got, want = routes[route], wanted[route]
        name = " ".join(route)
        for member in exact:
            same(f"{name} {member}", got.get(member), want[member])
        for member in ("diffs", "noise_suppressed"):
            same(
                f"{name} {member}",
                [(d["path"], d["count"], d["noise"]) for d in got.get(member, [])],
                [(d["path"], d["count"], d["noise"]) for d in want[member]],
            )
        same(
            f"{name} validation_errors",
            {k: v["count"] for k, v in got.get("validation_errors", {}).items()},
            {k: v["count"] for k, v in want["validation_errors"].items()},
        )
        same(f"{name} latency labels", sorted(got.get("latency", {})), sorted(want["latency"]))
        for label, figures in want["latency"].items():
            mine = got.get("latency", {}).get(label, {})
            same(f"{name} latency {label} count", mine.get("count"), figures["count"])
            same(f"{name} latency {label} max", mine.get("max"), figures["max"])
            for p in ("p50", "p90", "p99"):
                if not _close(mine.get(p), figures[p], 0.01):
                    out.append(f"{name} latency {label} {p}: {mine.get(p)} vs {figures[p]}")
        for member in ("latency_ratio", "latency_ratio_to_noise"):
            for p, value in (want.get(member) or {}).items():
                mine_ratio = (got.get(member) or {}).get(p)
                if not _close(mine_ratio, value, 0.021):
                    out.append(f"{name} {member} {p}: {mine_ratio} vs {value}")
    return out
