"""``shadowguard compare`` as Kafka workers: 100,000 pairs on 8 partitions, 1, 2 and 4 processes.

Absolute figures, as in :mod:`benchmarks.bench_compare` (measured once, in the API pass):
the records (an order service's, from :mod:`tests.compare._kafka_load`) are produced once
to an 8-partition topic on a Tansu broker (``SHADOWGUARD_BENCH_KAFKA``, else one started
here, as :mod:`benchmarks.bench_kafka_clients` does), then read by a fresh consumer group of
1, 2 and 4 worker processes (``--idle-exit``). Per worker: records per second from its first
assignment to its last record (from its ``--stats``), and its peak RSS (VmHWM, sampled while
it runs; its own ``max_rss_kb`` is printed beside: a child's ``ru_maxrss`` can include the
parent's memory from before exec); in all: records
per second from the group's first assignment to its last record, and end to end (from
starting the processes, Python's start and the group join included). The merged report must
count every pair. Takeover: two workers, one killed with SIGKILL a third of the way in; the
time until every partition's committed offset has moved past where it was at the kill (the
survivor has resumed the dead worker's partitions; an upper bound, by the commit interval).

The single-machine figure (``compare`` over the same records as JSON lines) is printed
beside, for scale, with the broker's own (producing, reading back with one consumer).

One target, so that ``nox -s bench`` fails on a real regression and not on a slow or busy
machine: two workers must process more than 1,000 records per second end to end (a
comparison row of the time per record against the floor's 1 ms). Tansu and two workers share
the machine's cores; a quick run on a two-core machine measured the single-machine compare at
about 50,000 records per second, so the floor fails only when the workers are some fifty
times slower than one process, a stall or a lost rebalance, not noise.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import tempfile
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
    running = [
        load.start_worker(
            bootstrap, topic, group, folder, f"{group}-{n}", "--idle-exit", str(IDLE_EXIT)
        )
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


def _takeover(h: Harness, bootstrap: str, topic: str, folder: Path, ends: dict[int, int]) -> None:
    """Two workers, one SIGKILLed a third of the way in: seconds until the other resumed."""
    from tests.compare import _kafka_load as load

    group = f"bench-kill-{uuid.uuid4().hex[:6]}"
    # Long enough for the group to notice the death (session.timeout.ms 2000) and rebalance
    # while the survivor has nothing left of its own.
    options = ("--idle-exit", "10")
    workers = [
        load.start_worker(bootstrap, topic, group, folder, f"{group}-{n}", *options) for n in (0, 1)
    ]
    total = sum(ends.values())

    def offsets() -> dict[int, int]:
        with contextlib.suppress(Exception):  # the group may not exist yet
            return load.committed(bootstrap, group, topic, PARTITIONS)
        return {}

    try:
        deadline = time.monotonic() + 120
        while sum(max(o, 0) for o in offsets().values()) < total / 3:
            if time.monotonic() > deadline or workers[0].process.poll() is not None:
                h.note("takeover not measured: the workers committed no offset in time")
                return
            time.sleep(0.1)
        at_kill = offsets()
        killed = time.monotonic()
        workers[0].process.kill()
        while True:
            now = offsets()
            if all(
                now.get(p, -1) > at_kill.get(p, -1) or now.get(p, -1) >= end
                for p, end in ends.items()
            ):
                break
            if time.monotonic() - killed > 60:
                h.note("takeover not measured: a partition did not resume within 60 s")
                return
            time.sleep(0.05)
        resumed = time.monotonic() - killed
        assert workers[1].wait(600) == 0, workers[1].log()[-2000:]
        survivor = workers[1].stats()
        h.note(
            f"takeover, 2 workers, SIGKILL of one: every partition resumed {resumed:.2f} s after "
            f"the kill (committed offsets polled every 50 ms); the survivor held "
            f"{len(survivor['partitions'])} partitions at the end, {survivor['rebalances']} "
            f"rebalance(s), {survivor['records']:,} records"
        )
    finally:
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
        _takeover(h, bootstrap, topic, folder, ends)
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
