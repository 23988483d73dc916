"""Compare workers on a real Kafka-protocol broker (Tansu) against ``shadowguard compare`` on one machine.

The same records go to a topic and to a folder of JSON lines. Worker processes of one
consumer group join the topic's records; ``compare report`` merges their results; the
merged report must count what the single-machine report over the folder counts, exactly
(latency within the sketch's 1 %), even when a worker is killed with SIGKILL half-way.

The harness tests (production, reading back, the comparison of reports) prove the oracle
itself, so that a pass of the worker tests means what it says.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from shadowguard.compare import report_schema
from tests._cli import json_report, run_shadowguard
from tests.compare import _kafka_load as load
from tests.peers.kafka import KafkaBroker

#: A worker joins the sides it is told (it cannot look ahead as a file's reader does): the
#: candidate by default is ``shadow`` and there is no noise side unless named.
SIDES = ("--candidate", "candidate", "--noise", "secondary")


def _reference(spec: str, *options: str) -> dict[str, Any]:
    result = run_shadowguard("compare", spec, "--json", "-q", *options)
    assert result.returncode == 0, result.stderr
    return json_report(result)


def _merged(broker: KafkaBroker, topic: str, group: str, *options: str) -> dict[str, Any]:
    result = load.merged_report(broker.bootstrap, topic, group, *options)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return json_report(result)


def _finished(worker: load.Worker, timeout: float) -> dict[str, Any]:
    """The worker exited 0 within ``timeout``, printed no traceback; its stats."""
    try:
        status = worker.wait(timeout)
    except Exception:
        worker.process.kill()
        worker.process.wait(5)
        raise AssertionError(
            f"worker still running after {timeout} s:\n{worker.log()[-3000:]}"
        ) from None
    log = worker.log()
    assert status == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    return worker.stats()


def _progress(broker: KafkaBroker, topic: str, group: str, partitions: int) -> bool:
    """Has the group committed an offset, or written a result, yet?"""
    with contextlib.suppress(Exception):  # the group may not exist yet
        if any(o > 0 for o in load.committed(broker.bootstrap, group, topic, partitions).values()):
            return True
    return load.count(broker.bootstrap, f"{topic}.compare.{group}", 1, timeout=0.3) > 0


def test_topic_holds_every_record_and_reads_back_as_the_reference(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """Harness: what was produced is all stored, and compares as the JSON lines written beside it."""
    records = load.generate(600, singles=40, generated=10)
    bad = load.bad_values(2)
    topic = kafka_broker.create_topic("capture", partitions=4)
    sent = load.produce(kafka_broker.bootstrap, topic, records, bad)
    assert sent == len(records) + len(bad)
    stored = kafka_broker.messages(topic, idle=0.5)
    assert len(stored) == sent
    assert {m.key().decode() for m in stored} >= {r["request_id"] for r in records}
    # The same request id always lands on one partition: the worker holding it sees both sides.
    where: dict[bytes, set[int]] = {}
    for message in stored:
        where.setdefault(message.key(), set()).add(message.partition())
    assert all(len(p) == 1 for p in where.values())
    assert len({m.partition() for m in stored}) == 4

    reference = _reference(load.write_reference(tmp_path / "ref", records, bad))
    assert reference["pairs"] == 600
    assert reference["noise_pairs"] == 600
    assert reference["unpaired"] == {"baseline": 30, "candidate": 30, "noise": 10}
    assert reference["generated_ids"] == {"baseline": 10, "candidate": 10, "noise": 10}
    assert reference["read"]["sources"][0]["skipped"] == {
        "not JSON": 4,
        "unknown schema version 99": 2,
    }
    flagged = [r["route"] for r in reference["routes"] if r["latency_flagged"]]
    assert flagged == ["/customers/{id}/orders"]

    # Read back from the broker, in the broker's order: the same report, to the count.
    back = tmp_path / "back"
    back.mkdir()
    (back / "topic.jsonl").write_bytes(b"".join(m.value() + b"\n" for m in stored))
    again = _reference(f"jsonl:///{back}")
    assert load.differences(again, reference) == []


def test_differences_sees_a_lost_record(tmp_path: Path) -> None:
    """Harness: the comparison the worker tests rely on notices one record missing."""
    records = load.generate(200, singles=4)
    reference = _reference(load.write_reference(tmp_path / "all", records))
    short = _reference(load.write_reference(tmp_path / "short", records[:-1]))
    found = load.differences(short, reference)
    assert any(line.startswith("read.records") for line in found), found


def test_two_workers_one_killed_count_every_request_once(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """SIGKILL of one of two workers half-way: the survivor takes over, nothing lost or doubled."""
    records = load.generate(5_000, singles=200, generated=50)
    bad = load.bad_values(2)
    topic = kafka_broker.create_topic("capture", partitions=4)
    group = f"cmp-{uuid.uuid4().hex[:8]}"
    first_part, second_part = len(records) * 3 // 5, len(records) * 4 // 5
    load.produce(kafka_broker.bootstrap, topic, records[:first_part], bad)
    options = ("--idle-exit", "8", "--session-timeout", "2", *SIDES)
    first = load.start_worker(kafka_broker.bootstrap, topic, group, tmp_path, "a", *options)
    second = load.start_worker(kafka_broker.bootstrap, topic, group, tmp_path, "b", *options)
    try:
        deadline = time.monotonic() + 25
        while not _progress(kafka_broker, topic, group, 4):
            assert first.process.poll() is None, first.log()[-3000:]
            assert time.monotonic() < deadline, "no committed offset or result within 25 s"
            time.sleep(0.2)
        # More records, read but not yet checkpointed when the worker dies.
        load.produce(kafka_broker.bootstrap, topic, records[first_part:second_part])
        time.sleep(0.5)
        first.process.send_signal(signal.SIGKILL)
        assert first.wait(5) == -signal.SIGKILL
        load.produce(kafka_broker.bootstrap, topic, records[second_part:])
        stats = _finished(second, timeout=45)
    finally:
        for worker in (first, second):
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait(5)
    assert sorted(stats["partitions"]) == [0, 1, 2, 3], stats
    assert stats["rebalances"] >= 2, stats  # it was given the dead worker's partitions
    assert stats["records"] > 0, stats
    assert stats["pairs"] > 0, stats

    merged = _merged(kafka_broker, topic, group)
    reference = _reference(load.write_reference(tmp_path / "ref", records, bad))
    assert merged["settings"]["latency_relative_accuracy"] == 0.01
    assert load.differences(merged, reference) == []
    assert merged["pairs"] == 5_000


@pytest.fixture(scope="module")
def bad_input(
    kafka_broker: KafkaBroker, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """One worker over a stream with bad values in it: its stats, the merged and the reference report."""
    folder = tmp_path_factory.mktemp("bad")
    records = load.generate(300, singles=30)
    bad = load.bad_values(4)
    topic = kafka_broker.create_topic("capture", partitions=2)
    group = f"cmp-{uuid.uuid4().hex[:8]}"
    load.produce(kafka_broker.bootstrap, topic, records, bad)
    options = ("--idle-exit", "4", "--session-timeout", "2", *SIDES)
    worker = load.start_worker(kafka_broker.bootstrap, topic, group, folder, "w", *options)
    stats = _finished(worker, timeout=40)
    merged = _merged(kafka_broker, topic, group)
    reference = _reference(load.write_reference(folder / "ref", records, bad))
    return stats, merged, reference


def test_bad_input_is_counted_and_the_worker_carries_on(
    bad_input: tuple[dict[str, Any], dict[str, Any], dict[str, Any]],
) -> None:
    """Undecodable values and an unknown version are skipped by reason; one-sided records are unpaired."""
    stats, merged, reference = bad_input
    assert stats["records"] == 300 * 3 + 30 + 12, stats
    assert merged["read"]["skipped"] == 12
    reasons = {"not JSON": 8, "unknown schema version 99": 4}
    assert load.skipped_by_reason(merged) == reasons
    assert merged["unpaired"]["baseline"] == merged["unpaired"]["candidate"] == 15
    assert load.differences(merged, reference) == []


def test_the_merged_report_follows_the_report_schema(
    bad_input: tuple[dict[str, Any], dict[str, Any], dict[str, Any]],
) -> None:
    """The merged report is the schema's document, as ``compare --json`` is."""
    jsonschema.validate(bad_input[1], report_schema())


def test_a_small_window_bounds_what_waits_for_a_partner(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """4,000 records that never pair, 1 s window: at most a window's worth is held at once."""
    singles = 4_000
    records = load.generate(1_000, singles=singles, noise=False, step=0.05)
    topic = kafka_broker.create_topic("capture", partitions=2)
    group = f"cmp-{uuid.uuid4().hex[:8]}"
    load.produce(kafka_broker.bootstrap, topic, records)
    window = ("--window", "1")
    # --expire: how long (in record time) a record waits for its partner; 61 s by default.
    sides = ("--candidate", "candidate")
    options = ("--idle-exit", "4", "--session-timeout", "2", *sides, "--expire", "2", *window)
    worker = load.start_worker(kafka_broker.bootstrap, topic, group, tmp_path, "w", *options)
    stats = _finished(worker, timeout=40)
    # A window of 1 s is 20 requests of the 50 s stream: about 100 records in flight at once.
    assert 0 < stats["max_pending"] <= singles // 10, stats

    merged = _merged(kafka_broker, topic, group)
    assert merged["unpaired"] == {"baseline": singles // 2, "candidate": singles // 2}
    reference = _reference(load.write_reference(tmp_path / "ref", records), *window)
    assert load.differences(merged, reference) == [], json.dumps(stats)
