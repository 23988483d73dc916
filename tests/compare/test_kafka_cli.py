"""``shadowguard compare kafka://...`` on the real broker (Tansu): the report's form, the
outputs, and every way to call it wrongly (one line, exit 2)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import jsonschema
import pytest

from shadowguard.capture_format import CaptureRecord, encode
from shadowguard.compare import report_schema
from tests._cli import json_report, run_shadowguard
from tests.compare._records import record
from tests.peers.kafka import KafkaBroker

WORKER = ("--idle-exit", "3", "--session-timeout", "2", "-q")


def _produce(broker: KafkaBroker, topic: str, records: list[CaptureRecord]) -> None:
    from confluent_kafka import Producer

    producer = Producer(broker.config())
    for item in records:
        producer.produce(topic, encode(item).encode(), key=item["request_id"].encode())
    producer.flush(10)


def _pairs(count: int) -> list[CaptureRecord]:
    out = []
    for i in range(count):
        start = 1_700_000_000.0 + i
        out.append(record(f"r{i}", "primary", started_at=start, body={"id": i, "v": 1}))
        out.append(record(f"r{i}", "shadow", started_at=start, body={"id": i, "v": i % 2}))
    return out


def _one_line(result: object, *needles: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr  # type: ignore[attr-defined]
    err = result.stderr.strip()  # type: ignore[attr-defined]
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


def test_the_merged_report_keeps_the_schema_and_renders(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    topic = kafka_broker.create_topic("cmp", partitions=3)
    _produce(kafka_broker, topic, _pairs(60))
    source = f"kafka://{kafka_broker.bootstrap}/{topic}"
    worker = run_shadowguard("compare", source, "--group", topic, *WORKER)
    assert worker.returncode == 0, worker.stderr
    result = run_shadowguard("compare", "report", source, "--group", topic, "--json")
    report = json_report(result)
    jsonschema.validate(report, report_schema())
    assert report["pairs"] == 60
    assert report["differing_pairs"] == 30
    assert report["settings"]["latency_relative_accuracy"] == 0.01
    kafka = report["read"]["sources"][0]["kafka"]
    assert kafka["group"] == topic
    assert sum(p["behind"] for p in kafka["partitions"].values()) == 0
    html = tmp_path / "r.html"
    text = run_shadowguard(
        "compare",
        "report",
        source,
        "--group",
        topic,
        "--html",
        str(html),
        "--fail-on",
        "diff-rate=0.1",
    )
    assert text.returncode == 1, text.stderr  # half the pairs differ: the gate fails
    assert "v" in text.stdout
    assert "<svg" in html.read_text(encoding="utf-8")


def test_workers_with_other_settings_are_refused(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.create_topic("cmp", partitions=1)
    _produce(kafka_broker, topic, _pairs(5))
    source = f"kafka://{kafka_broker.bootstrap}/{topic}"
    assert run_shadowguard("compare", source, "--group", topic, *WORKER).returncode == 0
    _produce(kafka_broker, topic, _pairs(5))
    other = run_shadowguard("compare", source, "--group", topic, "--ignore", "v", *WORKER)
    _one_line(other, "other settings", "--group")


def test_a_report_before_any_worker_says_how_to_start_one(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.create_topic("cmp", partitions=1)
    source = f"kafka://{kafka_broker.bootstrap}/{topic}"
    _one_line(
        run_shadowguard("compare", "report", source, "--group", "nobody"),
        "no results of group 'nobody'",
        f"shadowguard compare {source} --group nobody",
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("kafka://127.0.0.1:9/t",), "--group"),
        (("kafka://127.0.0.1:9/t", "x.jsonl", "--group", "g"), "stands alone"),
        (("kafka://127.0.0.1/t", "--group", "g"), "kafka://HOST:PORT"),
        (("kafka://127.0.0.1:9/", "--group", "g"), "kafka://HOST:PORT"),
        (("kafka://127.0.0.1:9/a b", "--group", "g"), "kafka://HOST:PORT"),
        (("kafka://127.0.0.1:9/t", "--group", "a/b"), "--results"),
        (("kafka://127.0.0.1:9/t", "--group", "g", "--expire", "-1"), "--expire"),
        (("kafka://127.0.0.1:9/t", "--group", "g", "--idle-exit", "nan"), "--idle-exit"),
        (("report", "kafka://127.0.0.1:9/t", "--group", "g", "--results", "a b"), "--results"),
    ],
)
def test_malformed_kafka_calls_say_what_is_wrong(args: tuple[str, ...], needle: str) -> None:
    _one_line(run_shadowguard("compare", *args), needle)


def test_an_unreachable_broker_is_one_line(kafka_broker: KafkaBroker) -> None:
    source = f"kafka://127.0.0.1:{_closed_port()}/t"
    _one_line(run_shadowguard("compare", source, "--group", "g", *WORKER), "127.0.0.1")
    _one_line(run_shadowguard("compare", "report", source, "--group", "g"), "127.0.0.1")


def test_a_missing_topic_is_one_line(kafka_broker: KafkaBroker) -> None:
    source = f"kafka://{kafka_broker.bootstrap}/no-such-topic-here"
    _one_line(run_shadowguard("compare", source, "--group", "g", *WORKER), "no topic")


def test_a_worker_warns_when_a_side_is_named_wrongly(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    topic = kafka_broker.create_topic("cmp", partitions=1)
    records = [
        {**r, "label": "candidate" if r["label"] == "shadow" else r["label"]} for r in _pairs(4)
    ]
    _produce(kafka_broker, topic, records)  # type: ignore[arg-type]
    source = f"kafka://{kafka_broker.bootstrap}/{topic}"
    stats = tmp_path / "stats.json"
    done = run_shadowguard("compare", source, "--group", topic, *WORKER[:-1], "--stats", str(stats))
    assert done.returncode == 0, done.stderr
    assert "a side got no record" in done.stderr
    assert "'candidate'" in done.stderr
    assert "--candidate" in done.stderr
    figures = json.loads(stats.read_text(encoding="utf-8"))
    assert figures["by_label"] == {"primary": 4, "candidate": 4}
    assert len(figures["assigned_at"]) == figures["rebalances"] >= 1
    assert 10_000 < figures["max_rss_kb"] < 1_000_000  # this process's own peak
    named = run_shadowguard(
        "compare", source, "--group", f"h-{topic}", "--candidate", "candidate", *WORKER
    )
    assert named.returncode == 0
    assert "warning" not in named.stderr


def test_a_recreated_topic_under_the_same_group_is_refused(kafka_broker: KafkaBroker) -> None:
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    topic = kafka_broker.create_topic("cmp", partitions=1)
    first = _pairs(30)
    first.append(record("lonely", "primary", started_at=1_700_000_029.0))  # held at the end
    _produce(kafka_broker, topic, first)
    source = f"kafka://{kafka_broker.bootstrap}/{topic}"
    assert run_shadowguard("compare", source, "--group", topic, *WORKER).returncode == 0
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})
    admin.delete_topics([topic], operation_timeout=10)[topic].result(timeout=10)
    admin.create_topics([NewTopic(topic, 1, 1)], operation_timeout=10)[topic].result(timeout=10)
    second = [{**r, "request_id": f"new-{r['request_id']}"} for r in _pairs(40)]
    _produce(kafka_broker, topic, second)  # type: ignore[arg-type]
    again = run_shadowguard("compare", source, "--group", topic, *WORKER)
    _one_line(again, "does not match the topic", "new --group")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--results", "{topic}"), "--results names the captured topic"),
        (("--session-timeout", "0.0001"), "--session-timeout"),
        (("--session-timeout", "1e9"), "--session-timeout"),
    ],
)
def test_worker_settings_out_of_range_are_one_line(
    kafka_broker: KafkaBroker, args: tuple[str, ...], needle: str
) -> None:
    topic = kafka_broker.create_topic("cmp", partitions=1)
    source = f"kafka://{kafka_broker.bootstrap}/{topic}"
    given = [a.format(topic=topic) for a in args]
    _one_line(run_shadowguard("compare", source, "--group", "g", *given), needle)
