"""The writer: a bounded queue that never makes a request wait, drops counted, flush, fork."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shadowguard import capture
from shadowguard.capture import Capture, CaptureSettings, _writer
from shadowguard.contract import Bursts
from shadowguard.middleware.asgi import ShadowGuardMiddleware
from tests.capture._support import (
    BlockingSink,
    FailingSink,
    ListSink,
    drive,
    dropped_counts,
    json_app,
    records,
)


@pytest.fixture(autouse=True)
def _fresh_bursts(monkeypatch: pytest.MonkeyPatch) -> None:
    """No burst of drops from an earlier test keeps this test's first drop from the log."""
    monkeypatch.setattr(_writer._state, "bursts", Bursts())


def test_a_sink_that_blocks_forever_never_blocks_a_request(
    metric_reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    sink = BlockingSink()
    app = ShadowGuardMiddleware(json_app, capture=Capture(CaptureSettings(queue_size=5), sink))
    before = dropped_counts(metric_reader)
    try:
        drive(app)
        assert sink.entered.wait(10), "the writer never reached the sink"
        served = threading.Event()

        def burst() -> None:
            for _ in range(20):
                drive(app)
            served.set()

        with caplog.at_level(logging.WARNING, logger="shadowguard.capture"):
            threading.Thread(target=burst, daemon=True).start()
            assert served.wait(30), "a request waited for the blocked sink"
        after = dropped_counts(metric_reader)
        assert after["queue_full"] - before["queue_full"] == 15  # 5 wait in the queue
        lines = [r.getMessage() for r in caplog.records if "capture dropped" in r.getMessage()]
        assert len(lines) == 1, lines  # one line per burst
        assert "5 records already wait" in lines[0]
        assert "shadowguard.capture_dropped{reason=queue_full}" in lines[0]
    finally:
        sink.release.set()
    assert capture.flush(10)
    assert len(sink.records) == 6


def test_a_failing_sink_is_counted_and_requests_go_on(metric_reader: InMemoryMetricReader) -> None:
    app = ShadowGuardMiddleware(json_app, capture=FailingSink())
    before = dropped_counts(metric_reader)
    for _ in range(3):
        drive(app)
    assert capture.flush(10)
    assert dropped_counts(metric_reader)["sink_error"] - before["sink_error"] == 3


def test_flush_close_and_capture_after_close() -> None:
    sink = ListSink()
    app = ShadowGuardMiddleware(json_app, capture=sink)
    drive(app, (b"x-request-id", b"one"))
    assert capture.close(10)
    assert sink.closed == 1
    assert [r["request_id"] for r in sink.records] == ["one"]
    assert _writer._state.thread is None
    drive(app, (b"X-Request-ID", b"two"))  # a later request starts a writer again
    assert capture.flush(10)
    assert [r["request_id"] for r in sink.records] == ["one", "two"]
    assert capture.close(10)
    assert capture.close(10)  # closing twice is harmless


def test_one_writer_serves_every_sink_of_the_process(tmp_path: Path) -> None:
    first = ShadowGuardMiddleware(json_app, capture=f"jsonl://{tmp_path}/a")
    second = ShadowGuardMiddleware(json_app, capture=f"sqlite://{tmp_path}/b.db")
    for _ in range(3):
        drive(first)
        drive(second)
    assert len(records(f"jsonl://{tmp_path}/a")) == len(records(f"sqlite://{tmp_path}/b.db")) == 3
    writers = [t for t in threading.enumerate() if t.name == "shadowguard-capture"]
    assert len(writers) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_starts_fresh(tmp_path: Path) -> None:
    """The child inherits neither the parent's queue nor its writer; it writes its own file."""
    blocked = BlockingSink()
    parent_app = ShadowGuardMiddleware(json_app, capture=blocked)
    url = f"jsonl://{tmp_path}"
    child_app = ShadowGuardMiddleware(json_app, capture=url)
    drive(parent_app)
    assert blocked.entered.wait(10)
    drive(parent_app)  # waits in the parent's queue
    try:
        pid = os.fork()
        if pid == 0:  # the child: only os._exit leaves it
            status = 1
            try:
                if _writer.pending() == 0 and _writer._state.thread is None:
                    drive(child_app, (b"x-request-id", b"child"))
                    status = 0 if capture.flush(10) else 2
            finally:
                os._exit(status)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        blocked.release.set()
    (record,) = records(url)
    assert record["request_id"] == "child"
    assert [p.name for p in tmp_path.iterdir()] == [f"primary-{pid}.jsonl"]
    assert capture.flush(10)
    assert len(blocked.records) == 2  # the parent's own records, written by the parent
