"""What the capture tests share: reading records back, the drop counter, test sinks."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shadowguard import capture
from shadowguard.capture import Encoded
from shadowguard.capture_format import CaptureRecord
from tests.middleware._helpers import reason_counts


def records(url: str | Path) -> list[CaptureRecord]:
    """Every record written to ``url`` once the writer has caught up."""
    assert capture.flush(timeout=30), "the capture writer did not catch up in 30 s"
    return list(capture.read_records(url))


def records_when(url: str | Path, count: int, timeout: float = 30) -> list[CaptureRecord]:
    """The records once there are ``count``: a real server closes a response body (and so
    ends the request) after its client may already have read the whole response."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = records(url)
        except FileNotFoundError:  # nothing written yet
            found = []
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def only(url: str | Path) -> CaptureRecord:
    found = records(url)
    assert len(found) == 1, found
    return found[0]


def dropped_counts(reader: InMemoryMetricReader) -> Counter[str]:
    """``shadowguard.capture_dropped`` per ``reason`` (cumulative)."""
    return reason_counts(reader, "shadowguard.capture_dropped")


class ListSink:
    """Keeps every batch it is given."""

    def __init__(self) -> None:
        self.batches: list[list[Encoded]] = []
        self.closed = 0

    def write(self, batch: Sequence[Encoded]) -> None:
        self.batches.append(list(batch))

    def close(self) -> None:
        self.closed += 1

    @property
    def records(self) -> list[CaptureRecord]:
        return [e.record for batch in self.batches for e in batch]


class BlockingSink(ListSink):
    """Blocks in ``write`` until :attr:`release` is set: a disk that hangs."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, batch: Sequence[Encoded]) -> None:
        self.entered.set()
        self.release.wait()
        super().write(batch)


class FailingSink(ListSink):
    """Every write fails, as a full disk would."""

    def write(self, batch: Sequence[Encoded]) -> None:
        raise OSError(28, "No space left on device")


async def json_app(scope: Any, receive: Any, send: Any) -> None:
    """A bare ASGI application answering ``{"ok": true}``."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"ok": true}'})


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    return None


def drive(app: Any, *headers: tuple[bytes, bytes], path: str = "/x") -> None:
    """Run one request through an ASGI app that never suspends, without an event loop."""
    scope = {"type": "http", "method": "GET", "path": path, "headers": list(headers)}
    coro = app(scope, _receive, _send)
    try:
        coro.send(None)
    except StopIteration:
        return
    raise AssertionError("the application suspended")
