"""The command line's Kafka forms: ``compare kafka://...`` (a worker) and ``compare report
kafka://...`` (the merged report)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from shadowguard.compare._compare import Result
from shadowguard.compare._errors import CompareError
from shadowguard.compare._kafka import clients, is_kafka, parse_source, results_topic
from shadowguard.compare._options import Options

__all__ = ["kafka_mode", "run_report", "run_worker"]

#: How long a record waits for its partner beyond the pairing window, by default.
EXPIRE_MARGIN = 60.0
EXPIRE_WITHOUT_WINDOW = 300.0


def kafka_mode(sources: list[str]) -> str | None:
    """``"worker"``, ``"report"`` or None (files); CompareError for a mix."""
    kafka = [s for s in sources if is_kafka(s)]
    if not kafka:
        return None
    if sources[0] == "report" and len(sources) == 2 and is_kafka(sources[1]):
        return "report"
    if len(sources) == 1:
        return "worker"
    raise CompareError(
        "a Kafka source stands alone: shadowguard compare kafka://HOST:PORT/TOPIC --group G "
        "(a worker), or shadowguard compare report kafka://HOST:PORT/TOPIC --group G"
    )


def _seconds(
    name: str, text: str | None, default: float | None, low: float = 0.0, high: float = 1e7
) -> float | None:
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not low < value <= high:
        raise CompareError(
            f"{name}={text!r} is not valid: accepted values are seconds over {low:g} "
            f"and up to {high:g}"
        )
    return value


def _group(args: argparse.Namespace) -> str:
    if not args.group or not args.group.strip():
        raise CompareError("a Kafka source needs --group NAME (the workers' consumer group)")
    return str(args.group).strip()


def run_worker(args: argparse.Namespace, options: Options) -> int:
    """Run one worker until it is stopped or idle; 0 when it stopped cleanly."""
    from shadowguard.compare._worker import Worker
    from shadowguard.compare._worker_settings import WorkerSettings

    source = parse_source(args.sources[0])
    group = _group(args)
    default_expire = (
        EXPIRE_WITHOUT_WINDOW if options.window is None else options.window + EXPIRE_MARGIN
    )
    expire = _seconds("--expire", args.expire, default_expire)
    session = _seconds("--session-timeout", args.session_timeout, 10.0, low=0.999, high=3600)
    assert expire is not None
    assert session is not None
    results = results_topic(source.topic, group, args.results)
    if results == source.topic:
        raise CompareError("--results names the captured topic: results need a topic of their own")
    settings = WorkerSettings(
        group=group,
        results=results,
        expire=expire,
        idle_exit=_seconds("--idle-exit", args.idle_exit, None),
        session_timeout_ms=int(session * 1000),
    )
    cimpl = clients()
    try:
        worker = Worker(source, options, settings)
        worker.install_signals()
        stats = worker.run()
    except cimpl.KafkaException as exc:
        raise CompareError(f"Kafka at {source.bootstrap}: {exc.args[0].str()}") from None
    figures: dict[str, Any] = asdict(stats)
    unjoined = worker.unjoined_labels()
    if unjoined:
        sides = ", ".join(f"{role} {label!r}" for role, label in worker.labels.roles())
        sys.stderr.write(
            f"shadowguard compare: warning: a side got no record ({sides}) while records "
            f"labelled {', '.join(map(repr, unjoined))} were read; name the sides with "
            "--baseline, --candidate or --noise (workers do not guess them)\n"
        )
    if not stats.rebalances:
        sys.stderr.write(
            "shadowguard compare: warning: this worker was never assigned a partition (more "
            f"workers than partitions, or group {group!r} did not settle); it compared nothing\n"
        )
    if args.stats:
        try:
            Path(args.stats).write_text(json.dumps(figures), encoding="utf-8")
        except OSError as exc:
            raise CompareError(f"--stats: cannot write {args.stats}: {exc.strerror}") from None
    if not args.quiet:
        sys.stderr.write(
            f"[compare] worker stopped: {stats.records:,} records, {stats.pairs:,} pairs, "
            f"{stats.checkpoints} checkpoints, {stats.rebalances} rebalances\n"
        )
    return 0


def run_report(args: argparse.Namespace, options: Options) -> Result:
    """Merge the results of ``--group`` into the report."""
    from shadowguard.compare._kafka_report import kafka_report

    source = parse_source(args.sources[1])
    group = _group(args)
    cimpl = clients()
    try:
        result = kafka_report(
            source, group, results_topic(source.topic, group, args.results), options
        )
    except cimpl.KafkaException as exc:
        raise CompareError(f"Kafka at {source.bootstrap}: {exc.args[0].str()}") from None
    partitions = result.report["read"]["sources"][0]["kafka"]["partitions"]
    behind = {p: v["behind"] for p, v in partitions.items() if v["behind"]}
    if behind:
        sys.stderr.write(
            f"shadowguard compare: warning: the workers have not compared "
            f"{sum(behind.values()):,} records yet (partitions {', '.join(sorted(behind))}): "
            "this report covers what they have\n"
        )
    return result
