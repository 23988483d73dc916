"""Work that outlives the shadow request that started it is loud, and ``detached()`` avoids it.

A worker task started lazily by the first request copies that request's context: if the
request was mirrored, the worker runs as shadow for the life of the process and suppresses
primary work. shadowguard cannot tell that work apart, so it says so.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

import shadowguard
from shadowguard import shadow, side_effect
from tests.test_telemetry import _points

STORED: list[str] = []


@side_effect
def store(item: str) -> None:
    STORED.append(item)


class LazyWorker:
    """An application's queue worker, started by whichever request comes first."""

    def __init__(self, *, detach: bool) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.detach = detach

    def submit(self, item: str) -> None:
        if self.task is None:
            if self.detach:
                with shadowguard.detached():
                    self.task = asyncio.create_task(self._run())
            else:
                self.task = asyncio.create_task(self._run())
        self.queue.put_nowait(item)

    async def _run(self) -> None:
        while True:
            store(await self.queue.get())
            self.queue.task_done()

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


def _late_count(reader: Any) -> float:
    total: float = sum(
        p.value
        for p in _points(reader, "shadowguard.suppressed_after_scope_end")
        if p.attributes.get("kind") == "call"
    )
    return total


@pytest.mark.asyncio
async def test_a_worker_started_by_a_shadow_request_warns_once_and_is_counted(
    caplog: pytest.LogCaptureFixture, metric_reader: Any
) -> None:
    STORED.clear()
    before = _late_count(metric_reader)
    worker = LazyWorker(detach=False)
    with shadow("request:host"):
        worker.submit("mirrored")
        await worker.queue.join()
    with caplog.at_level(logging.WARNING, logger="shadowguard"):
        for item in ("primary-1", "primary-2", "primary-3"):
            worker.submit(item)
        await worker.queue.join()
    await worker.stop()
    # The worker still runs as shadow: the primary items were suppressed, and that is loud.
    assert STORED == []
    warnings = [r for r in caplog.records if "after that scope ended" in r.getMessage()]
    assert len(warnings) == 1
    assert "detached" in warnings[0].getMessage()
    assert _late_count(metric_reader) == before + 3


@pytest.mark.asyncio
async def test_a_worker_started_detached_serves_primary_work(
    caplog: pytest.LogCaptureFixture,
) -> None:
    STORED.clear()
    worker = LazyWorker(detach=True)
    with caplog.at_level(logging.WARNING, logger="shadowguard"), shadow("request:host"):
        worker.submit("mirrored-but-queued")
        await worker.queue.join()
    worker.submit("primary-1")
    await worker.queue.join()
    await worker.stop()
    assert STORED == ["mirrored-but-queued", "primary-1"]
    assert not [r for r in caplog.records if "after that scope ended" in r.getMessage()]


def test_recording_inside_a_live_scope_is_not_late(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="shadowguard"), shadow() as scope:
        store("x")
    assert scope.ended
    assert scope.late == 0
    assert not caplog.records
