"""``shadowguard compare`` as Kafka workers: 100,000 pairs on 8 partitions, 1, 2 and 4 processes.

Absolute figures, as in :mod:`benchmarks.bench_compare` (measured once, in the API pass):
the records (an order service's, from :mod:`tests.compare._kafka_load`) are produced once
to an 8-partition topic on a Tansu broker (``SHADOWGUARD_BENCH_KAFKA``, else one started
here, as :mod:`benchmarks.bench_kafka_clients` does), then read by a fresh consumer group of
1, 2 and 4 worker processes (``--idle-exit``). Per worker: records per second from its first
assignment to its last record (from its ``--stats``), and its peak RSS (VmHWM, sampled while
it runs; its own ``max_rss_kb`` is printed beside: a child's ``ru_maxrss`` can include the
parent's memory from before exec); in all: records per second from the group's first
assignment to its last record, and end to end (from starting the processes, Python's start
and the group join included). The merged report must
count every pair. Takeover: two workers on a live stream (5,000 records a second on a topic
of its own), one killed with SIGKILL once every partition has a committed offset; the time
until every partition's committed offset has moved past where it was at the kill: the
survivor has resumed the dead worker's partitions, and the merged report still counts every
pair once. The workers commit after a checkpoint (every 5 s of a partition), so the figure
is the group's session timeout, the rebalance and the restore of the checkpoints, plus up to
one checkpoint interval: an upper bound.

The single-machine figure (``compare`` over the same records as JSON lines) is printed
beside, for scale, with the broker's own (producing, reading back with one consumer).

One target, so that ``nox -s bench`` fails on a real regression and not on a slow or busy
machine: two workers must process more than 1,000 records per second end to end (a
comparison row of the time per record against the floor's 1 ms). On a two-core machine busy
with other test runs, two workers sharing it with Tansu measured about 16,000 records per
second end to end (median of two) and the single-machine compare about 12,000: the floor
fails when the workers are some fifteen times slower than that, a stall, a lost partition
or a rebalance that never settles, not noise. A quick run (20,000 pairs) weighs the start
and the group join more: about 8,000 records per second end to end, still eight times the
floor.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks._harness import QUICK, Comparison, Harness, row
from benchmarks.bench_kafka_clients import _broker

PAIRS = 20_000 if QUICK else 100_000
PARTITIONS = 8
WORKERS = (1, 2, 4)
IDLE_EXIT = 3.0
#: Every worker: the sides named (a worker's candidate is ``shadow`` by default) and the
#: consumer-group session of PEERS.md (a dead worker's partitions move after 2 s, not 10).
OPTIONS = ("--candidate", "candidate", "--session-timeout", "2")
#: The takeover's live stream: records per second, for this long.
TAKEOVER_RATE = 5_000
TAKEOVER_SECONDS = 20 if QUICK else 30
#: Records per second two workers must beat end to end.
FLOOR = 1_000.0
NAME = "compare kafka workers, 2 processes: ns per record against the 1,000 records/s floor"


def _single_machine(h: Harness, spec: str, records: int) -> None:
    from shadowguard.compare import compare

    start, start_cpu = time.perf_counter(), time.process_time()
    report = compare([spec]).report
    seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    assert report["pairs"] == PAIRS, report["pairs"]
    h.note(
        f"compare on one machine, the same {records:,} records as JSON lines: {seconds:.2f} s, "
        f"{records / seconds:,.0f} records/s (CPU {cpu:.2f} s)"
    )


def _group(bootstrap: str, topic: str, folder: Path, workers: int, records: int) -> dict[str, Any]:
    """Run ``workers`` processes of a fresh group to the end; what they measured."""
    from tests.compare import _kafka_load as load

    group = f"bench-{workers}-{uuid.uuid4().hex[:6]}"
    start = time.monotonic()
    options = ("--idle-exit", str(IDLE_EXIT), *OPTIONS)
    running = [
        load.start_worker(bootstrap, topic, group, folder, f"{group}-{n}", *options)
        for n in range(workers)
    ]
    statuses = load.wait_all(running, 600)
    assert statuses == [0] * workers, [w.log()[-2000:] for w in running]
    stats = [w.stats() | {"peak_rss_kb": w.peak_rss_kb} for w in running]
    # A worker's last record came IDLE_EXIT before it exited (and before its final
    # checkpoint: the estimate errs towards slower).
    lasts = [(w.ended or time.monotonic()) - IDLE_EXIT for w in running]
    firsts = [last - s["seconds"] for last, s in zip(lasts, stats, strict=True)]
    result = load.merged_report(bootstrap, topic, group)
    assert result.returncode == 0, result.stderr[-2000:]
    pairs = json.loads(result.stdout)["pairs"]
    assert pairs == PAIRS, pairs
    return {
        "stats": stats,
        "processing": records / (max(lasts) - min(firsts)),
        "end_to_end": records / (max(lasts) - start),
    }


def _stream(bootstrap: str, topic: str, records: list[Any]) -> None:
    """Produce ``records`` at about TAKEOVER_RATE a second, as live traffic arrives."""
    from tests.compare import _kafka_load as load

    chunk = TAKEOVER_RATE // 10
    start = time.monotonic()
    for n in range(0, len(records), chunk):
        load.produce(bootstrap, topic, records[n : n + chunk])
        time.sleep(max(0.0, start + (n + chunk) / TAKEOVER_RATE - time.monotonic()))


def _takeover(h: Harness, bootstrap: str, folder: Path) -> None:
    """Two workers on a live stream, one SIGKILLed once both have committed: until the other resumed."""
    from tests.compare import _kafka_load as load

    pairs = TAKEOVER_RATE * TAKEOVER_SECONDS // 2
    records = load.generate(pairs, noise=False, seed=5)
    topic = load.create_topic(bootstrap, PARTITIONS, prefix="bench-takeover")
    group = f"bench-kill-{uuid.uuid4().hex[:6]}"
    # Long enough for the group to notice the death (session timeout 2 s) and rebalance
    # while the survivor has nothing left of its own.
    options = ("--idle-exit", "10", *OPTIONS)
    workers = [
        load.start_worker(bootstrap, topic, group, folder, f"{group}-{n}", *options) for n in (0, 1)
    ]
    producer = threading.Thread(target=_stream, args=(bootstrap, topic, records))
    producer.start()

    def offsets() -> dict[int, int]:
        with contextlib.suppress(Exception):  # the group may not exist yet
            return load.committed(bootstrap, group, topic, PARTITIONS)
        return {}

    try:
        deadline = time.monotonic() + 60
        while sum(o > 0 for o in offsets().values()) < PARTITIONS:
            if time.monotonic() > deadline or workers[0].process.poll() is not None:
                h.note("takeover not measured: the workers did not commit every partition in time")
                return
            time.sleep(0.1)
        at_kill = offsets()
        killed = time.monotonic()
        killed_at = time.time()
        workers[0].process.kill()
        resumed: dict[int, float] = {}
        # The survivor's last commits may come after the stream ended: watch until it exits.
        while len(resumed) < PARTITIONS and time.monotonic() < killed + 60:
            alive = workers[1].process.poll() is None
            for p, offset in offsets().items():
                if offset > at_kill[p] and p not in resumed:
                    resumed[p] = time.monotonic() - killed
            if not alive:
                break
            time.sleep(0.05)
        producer.join()
        assert workers[1].wait(600) == 0, workers[1].log()[-2000:]
        survivor = workers[1].stats()
        result = load.merged_report(bootstrap, topic, group)
        assert result.returncode == 0, result.stderr[-2000:]
        counted = json.loads(result.stdout)["pairs"]
        assert counted == pairs, (counted, pairs)
        if len(resumed) < PARTITIONS:
            h.note(f"takeover not measured: only partitions {sorted(resumed)} committed again")
            return
        reassigned = [t - killed_at for t in survivor.get("assigned_at", []) if t > killed_at]
        h.note(
            f"takeover, 2 workers on a stream of {TAKEOVER_RATE:,} records/s, SIGKILL of one: "
            + (
                f"the survivor was assigned every partition {reassigned[0]:.1f} s after the kill "
                "(the session timeout, 2 s, and the rebalance); "
                if reassigned
                else ""
            )
            + f"every partition committed again within {max(resumed.values()):.1f} s of the kill "
            f"(each: {', '.join(f'{t:.1f}' for t in sorted(resumed.values()))} s; commits follow "
            f"checkpoints, every 5 s); "
            f"the survivor held {len(survivor['partitions'])} partitions at the end after "
            f"{survivor['rebalances']} assignments; the merged report counts all {pairs:,} pairs"
        )
    finally:
        producer.join()
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait(5)


def run(h: Harness) -> None:
    if h.sdk:
        return  # no telemetry on this path: the API pass measures it
    if h.only is not None and NAME not in h.only:
        return
    if not h.imports(
        "confluent_kafka",
        missing="confluent-kafka is not installed: pip install 'shadowguard[kafka]'",
    ):
        return
    from tests.compare import _kafka_load as load

    with _broker(h) as bootstrap, tempfile.TemporaryDirectory() as tmp:
        if bootstrap is None:
            return
        folder = Path(tmp)
        records = load.generate(PAIRS, noise=False)
        topic = load.create_topic(bootstrap, PARTITIONS, prefix="bench-compare")
        start = time.perf_counter()
        sent = load.produce(bootstrap, topic, records)
        produced = time.perf_counter() - start
        start = time.perf_counter()
        ends = load.stored(bootstrap, topic, sent, timeout=120)
        read = time.perf_counter() - start
        assert sum(ends.values()) == sent, ends
        h.note(
            f"{sent:,} records on {PARTITIONS} partitions: produced at {sent / produced:,.0f}/s, "
            f"read back by one consumer at {sent / read:,.0f}/s (0.5 s of quiet included)"
        )
        _single_machine(h, load.write_reference(folder / "reference", records), sent)
        del records
        two: dict[str, Any] = {}
        for workers in WORKERS:
            runs = [
                _group(bootstrap, topic, folder, workers, sent) for _ in range(1 if QUICK else 2)
            ]
            best = max(runs, key=lambda r: r["end_to_end"])
            if workers == 2:
                two = best
            each = ", ".join(
                f"{s['records'] / max(s['seconds'], 1e-9):,.0f}/s "
                f"({s['records']:,} records, peak RSS {s['peak_rss_kb'] // 1024} MiB, "
                f"{s['max_rss_kb'] // 1024} MiB by its stats)"
                for s in best["stats"]
            )
            h.note(
                f"{workers} worker(s): {best['processing']:,.0f} records/s in all "
                f"({best['end_to_end']:,.0f}/s end to end; best of {len(runs)}; "
                f"median {statistics.median(r['end_to_end'] for r in runs):,.0f}/s); each: {each}"
            )
        _takeover(h, bootstrap, folder)
        per_record = 1e9 / two["end_to_end"]
        floor = 1e9 / FLOOR
        result = Comparison(
            NAME,
            h.telemetry,
            baseline_ns=floor,
            guarded_ns=per_record,
            ratio=per_record / floor,
            added_ns=per_record - floor,
            median_added_ns=per_record - floor,
            target_ratio=1.0,
            module=h.module,
        )
        h.results.append(result)
        print(row(result), flush=True)
