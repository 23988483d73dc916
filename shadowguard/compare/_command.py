"""``shadowguard compare SOURCE [SOURCE...]``: the options, progress on stderr, exit status.

Exit status: 0 when every ``--fail-on`` gate holds (or none is given), 1 when one does not,
2 when the comparison could not run (a source that cannot be read, a malformed option, no
record for a side), with one line saying why.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from shadowguard.compare._compare import compare
from shadowguard.compare._errors import CompareError
from shadowguard.compare._kafka_command import kafka_mode, run_report, run_worker
from shadowguard.compare._options import build_options, load_config

__all__ = ["add_arguments", "run"]

_OPTIONS = (
    "baseline",
    "candidate",
    "noise",
    "window",
    "ignore",
    "header",
    "noise_relative",
    "noise_absolute",
    "examples",
    "p99_ratio",
    "min_count",
    "max_record_bytes",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the ``compare`` subcommand (values are validated by :func:`run`)."""
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="captured records: sqlite:///PATH, jsonl:///DIR, or a path (folder or .jsonl "
        "file: JSON lines; other files: SQLite)",
    )
    sides = parser.add_argument_group("sides")
    sides.add_argument("--baseline", metavar="LABEL", help="default: primary")
    sides.add_argument(
        "--candidate", metavar="LABEL", help="default: candidate when present, else shadow"
    )
    sides.add_argument(
        "--noise", metavar="LABEL", help="default: secondary when present; none turns it off"
    )
    sides.add_argument(
        "--window",
        metavar="SECONDS",
        help="pair records whose starts are at most this far apart (default 60; off)",
    )
    diff = parser.add_argument_group("differences")
    diff.add_argument(
        "--ignore",
        action="append",
        metavar="PATH",
        help="ignore a field path glob (items[].created_at, meta.*, **.etag, header:etag); "
        "repeatable",
    )
    diff.add_argument(
        "--header",
        action="append",
        metavar="NAME",
        help="compare only these response headers (repeatable; default: every captured "
        "header but date, content-length, x-request-id, x-envoy-upstream-service-time)",
    )
    diff.add_argument(
        "--noise-relative",
        metavar="FRACTION",
        help="report a path only if (c - n) / c exceeds this (default 0.2)",
    )
    diff.add_argument(
        "--noise-absolute",
        metavar="FRACTION",
        help="report a path only if c - n exceeds this (default 0.001)",
    )
    diff.add_argument("--examples", metavar="N", help="example requests kept per path (default 3)")
    latency = parser.add_argument_group("latency")
    latency.add_argument(
        "--p99-ratio",
        metavar="RATIO",
        help="flag a route whose candidate P99 exceeds this times the baseline's (default 1.5)",
    )
    latency.add_argument(
        "--min-count",
        metavar="N",
        help="records needed on each side before a route is flagged (default 20)",
    )
    out = parser.add_argument_group("input and output")
    out.add_argument("--config", metavar="FILE", help="options from a TOML or JSON file")
    out.add_argument(
        "--max-record-bytes",
        metavar="BYTES",
        help="skip (and count) stored records larger than this (default 16 MiB)",
    )
    out.add_argument("--json", action="store_true", help="print the report as JSON")
    out.add_argument("--html", metavar="PATH", help="write a self-contained HTML report")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    kafka = parser.add_argument_group(
        "Kafka (SOURCE kafka://HOST:PORT/TOPIC: run a worker; 'report kafka://...': merge)"
    )
    kafka.add_argument("--group", metavar="NAME", help="the workers' consumer group (required)")
    kafka.add_argument(
        "--results",
        metavar="TOPIC",
        help="where workers write results (default TOPIC.compare.GROUP)",
    )
    kafka.add_argument(
        "--expire",
        metavar="SECONDS",
        help="a record waits this long (in its partition's record time) for its partner "
        "(default: the window plus 60; 300 with the window off)",
    )
    kafka.add_argument(
        "--idle-exit", metavar="SECONDS", help="stop when no record came for this long"
    )
    kafka.add_argument("--stats", metavar="FILE", help="write the worker's figures here (JSON)")
    kafka.add_argument(
        "--session-timeout",
        metavar="SECONDS",
        help="the consumer group session timeout: a dead worker's partitions move after it "
        "(default 10)",
    )
    out.add_argument(
        "--fail-on",
        action="append",
        metavar="GATE=VALUE",
        help="exit 1 beyond a threshold: diff-rate=FRACTION, p99-ratio=RATIO, "
        "error-rate=FRACTION, unpaired=FRACTION (repeatable)",
    )


class _Progress:
    """Progress on stderr once a run has taken a second: in place on a terminal."""

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.clock = clock
        self.tty = stream.isatty()
        self.start = clock()
        self.last = -math.inf
        self.shown = False

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        now = self.clock()
        if now - self.start < 1 or now - self.last < (0.2 if self.tty else 2):
            return
        self.last = now
        text = (
            f"read {done:,} records" if stage == "read" else f"diffed {done:,} of {total:,} pairs"
        )
        self.stream.write(f"\r[compare] {text}\x1b[K" if self.tty else f"[compare] {text}\n")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown and self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def run(args: argparse.Namespace) -> int:
    """Run one comparison from parsed arguments; print the report; return the exit status."""
    progress = _Progress(sys.stderr)
    try:
        config = load_config(args.config) if args.config else None
        cli = {name: getattr(args, name) for name in _OPTIONS}
        options = build_options(cli | {"fail_on": args.fail_on}, config)
        kafka = kafka_mode(args.sources)
        if kafka == "worker":
            return run_worker(args, options)
        if kafka == "report":
            result = run_report(args, options)
        else:
            result = compare(args.sources, options, None if args.quiet else progress)
        if args.html:
            from shadowguard.compare._html import render_html

            try:
                Path(args.html).write_text(
                    render_html(result.report, result.durations), encoding="utf-8"
                )
            except OSError as exc:
                raise CompareError(f"--html: cannot write {args.html}: {exc.strerror}") from None
    except CompareError as exc:
        progress.clear()
        print(f"shadowguard compare: {exc}", file=sys.stderr)
        return 2
    progress.clear()
    if args.json:
        print(json.dumps(result.report, indent=2, allow_nan=False))
    else:
        from shadowguard.compare._text import render_text

        print(render_text(result.report))
    return 0 if result.passed else 1
