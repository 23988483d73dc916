"""An admitted shadow request gives its slot back to the gate it was admitted into."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

import shadowguard
from shadowguard import _config
from shadowguard.contract import settings_or_defaults
from shadowguard.middleware import _admission
from shadowguard.middleware.asgi import ShadowGuardMiddleware
from tests.middleware._shed import fresh_gate

SHADOW = {"x-shadow-request": "1"}


@pytest.fixture(autouse=True)
def _gate(monkeypatch: pytest.MonkeyPatch) -> None:
    fresh_gate(monkeypatch)


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def _admit(limit: int | None = None) -> _admission.Slot:
    settings = settings_or_defaults().replace(max_concurrent_shadow=limit)
    slot = _admission.admit(settings, None)
    assert isinstance(slot, _admission.Slot), slot
    return slot


def test_a_slot_goes_back_to_its_own_gate_once(monkeypatch: pytest.MonkeyPatch) -> None:
    old = _admission._gate
    first = _admit()
    monkeypatch.setattr(_admission, "_gate", _admission._Gate())  # swapped mid-request
    second = _admit()
    first.release()
    assert (old.running, _admission.running()) == (0, 1)
    first.release()  # a second release (a response's close() and __del__) counts nothing
    assert (old.running, _admission.running()) == (0, 1)
    second.release()
    second.release()
    assert (old.running, _admission.running()) == (0, 0)


def test_concurrent_releases_of_one_slot_count_once() -> None:
    slots = [_admit() for _ in range(200)]
    keep = _admit()
    barrier = threading.Barrier(4)

    def release_all() -> None:
        barrier.wait()
        for slot in slots:
            slot.release()

    threads = [threading.Thread(target=release_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert _admission.running() == 1
    keep.release()
    assert _admission.running() == 0


@pytest.mark.asyncio
async def test_a_request_admitted_before_a_gate_swap_does_not_free_a_slot_of_the_new_gate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Limit 1: the old gate's request ends while the new gate's runs; the new gate still
    sheds a second shadow request (a release into the current gate would have let it in)."""
    events = {"old": asyncio.Event(), "new": asyncio.Event()}
    app = FastAPI()

    @app.get("/wait/{name}")
    async def wait(name: str) -> dict[str, bool]:
        await events[name].wait()
        return {"ok": True}

    @app.get("/fast")
    async def fast() -> dict[str, bool]:
        return {"ok": True}

    guarded = ShadowGuardMiddleware(app, max_concurrent_shadow=1)
    transport = httpx.ASGITransport(app=guarded)
    async with httpx.AsyncClient(transport=transport, base_url="http://orders") as http:
        old_request = asyncio.create_task(http.get("/wait/old", headers=SHADOW))
        await _until(lambda: _admission.running() == 1)
        old = _admission._gate
        monkeypatch.setattr(_admission, "_gate", _admission._Gate())
        new_request = asyncio.create_task(http.get("/wait/new", headers=SHADOW))
        await _until(lambda: _admission.running() == 1)
        events["old"].set()
        assert (await old_request).status_code == 200
        assert (old.running, _admission.running()) == (0, 1)
        shed = await http.get("/fast", headers=SHADOW)
        assert shed.status_code == 503
        assert shed.headers["x-shadowguard-shed"] == "limit"
        events["new"].set()
        assert (await new_request).status_code == 200
        assert (await http.get("/fast", headers=SHADOW)).status_code == 200
    assert (old.running, _admission.running()) == (0, 0)


@pytest.mark.asyncio
async def test_the_count_is_exact_across_configure_at_runtime() -> None:
    """Two requests run at limit 2; lowered to 1, the new limit waits for both to end."""
    gates = asyncio.Event()
    app = FastAPI()

    @app.get("/wait")
    async def wait() -> dict[str, bool]:
        await gates.wait()
        return {"ok": True}

    guarded = ShadowGuardMiddleware(app)  # no options: the process settings of the moment
    transport = httpx.ASGITransport(app=guarded)
    try:
        shadowguard.configure(max_concurrent_shadow=2)
        async with httpx.AsyncClient(transport=transport, base_url="http://orders") as http:
            running = [asyncio.create_task(http.get("/wait", headers=SHADOW)) for _ in range(2)]
            await _until(lambda: _admission.running() == 2)
            shadowguard.configure(max_concurrent_shadow=1)
            assert (await http.get("/wait", headers=SHADOW)).status_code == 503
            gates.set()
            assert [(await task).status_code for task in running] == [200, 200]
            assert _admission.running() == 0
            assert (await http.get("/wait", headers=SHADOW)).status_code == 200
    finally:
        _config.reset()
    assert _admission.running() == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_worker_counts_only_its_own_requests() -> None:
    """The parent's request ends in the parent; in the child its slot releases nothing and
    never waits for the gate's lock, held at the fork by a parent's thread."""
    inherited = _admit()
    locked, forked = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with _admission._gate.lock:
            locked.set()
            forked.wait(10)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert locked.wait(10)
        pid = os.fork()
        if pid == 0:  # the child: only os._exit, never back into pytest
            code = 1
            try:
                if _admission.running() == 0:
                    inherited.release()  # would block forever on the inherited lock
                    own = _admit()
                    counted = _admission.running()
                    own.release()
                    if counted == 1 and _admission.running() == 0:
                        code = 0
            finally:
                os._exit(code)
    finally:
        forked.set()
        holder.join(timeout=10)
    deadline = time.monotonic() + 30
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child did not exit within 30 s")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(done[1]) == 0
    assert _admission.running() == 1  # the parent still counts its own request
    inherited.release()
    assert _admission.running() == 0
