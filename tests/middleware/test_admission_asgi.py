"""ASGI admission control on a real FastAPI app: limit, budget, disconnect cancellation."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

import httpx
import pytest
from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import StreamingResponse
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import shadowguard
from shadowguard import ConfigError, _config
from shadowguard.middleware import _admission
from shadowguard.middleware.asgi import ShadowGuardMiddleware
from tests.middleware._asgi_driver import Exchange
from tests.middleware._shed import fresh_gate, new_sheds, shed_counts

SHADOW = [(b"x-shadow-request", b"1")]


@pytest.fixture(autouse=True)
def _gate(monkeypatch: pytest.MonkeyPatch) -> None:
    fresh_gate(monkeypatch)


class Probe:
    """What the handlers did: how many ran at once, which reached their end."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.started: list[str] = []
        self.finished: list[str] = []
        self.release = asyncio.Event()

    async def hold(self, name: str) -> None:
        self.started.append(name)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        self.finished.append(name)


def build(probe: Probe, **options: Any) -> Any:
    app = FastAPI()

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        await probe.hold("slow")
        return {"ok": True}

    @app.get("/fast")
    async def fast() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/work")
    async def work(request: Request) -> dict[str, Any]:
        body = await request.json()
        probe.started.append("work")
        await asyncio.sleep(0.3)
        probe.finished.append("work")  # the post-sleep code
        return body  # type: ignore[no-any-return]

    @app.get("/sleep")
    async def sleep() -> dict[str, bool]:
        probe.started.append("sleep")
        await asyncio.sleep(0.3)
        probe.finished.append("sleep")
        return {"ok": True}

    @app.get("/hang")
    async def hang() -> None:
        probe.started.append("hang")
        await asyncio.Event().wait()  # forever

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def body() -> Any:
            yield b"a"
            await probe.release.wait()
            yield b"b"

        return StreamingResponse(body())

    @app.get("/background")
    async def background(tasks: BackgroundTasks) -> dict[str, bool]:
        async def later() -> None:
            await asyncio.sleep(0.05)
            probe.finished.append("background")

        tasks.add_task(later)
        return {"ok": True}

    return ShadowGuardMiddleware(app, **options)


def client(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://orders:8080")


async def until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


@pytest.mark.asyncio
async def test_burst_of_ten_times_the_limit_runs_exactly_the_limit(
    metric_reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    """40 slow shadow requests at limit 4: 4 run, 36 get 503 at once; primaries all served."""
    caplog.set_level(logging.WARNING, logger="shadowguard.middleware")
    probe = Probe()
    app = build(probe, max_concurrent_shadow=4)
    before = shed_counts(metric_reader)
    async with client(app) as http:
        shadows = [
            asyncio.create_task(http.get("/slow", headers={"x-shadow-request": "1"}))
            for _ in range(40)
        ]
        await until(lambda: sum(t.done() for t in shadows) == 36 and len(probe.started) == 4)
        shed = [t.result() for t in shadows if t.done()]
        assert {r.status_code for r in shed} == {503}
        assert {r.headers["x-shadowguard-shed"] for r in shed} == {"limit"}
        # While the four hold their slots, primary requests are served, never shed.
        primaries = await asyncio.gather(*(http.get("/fast") for _ in range(20)))
        assert [r.status_code for r in primaries] == [200] * 20
        assert _admission.running() == 4
        probe.release.set()
        done = await asyncio.gather(*shadows)
    assert sorted(r.status_code for r in done) == [200] * 4 + [503] * 36
    assert probe.peak == 4
    assert probe.started == ["slow"] * 4
    assert probe.finished == ["slow"] * 4
    assert _admission.running() == 0
    assert new_sheds(metric_reader, before) == {"limit": 36}
    warnings = [r for r in caplog.records if r.name == "shadowguard.middleware"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]  # once per burst
    assert "max_concurrent_shadow" in warnings[0].getMessage()


@pytest.mark.asyncio
async def test_limit_one_with_primary_and_shadow_at_once() -> None:
    probe = Probe()
    app = build(probe, max_concurrent_shadow=1)
    async with client(app) as http:
        first = asyncio.create_task(http.get("/slow", headers={"x-shadow-request": "1"}))
        held = asyncio.create_task(http.get("/slow"))  # a primary on the same slow route
        await until(lambda: len(probe.started) == 2)
        second = await http.get("/slow", headers={"x-shadow-request": "1"})
        assert second.status_code == 503
        assert (await http.get("/fast")).status_code == 200
        probe.release.set()
        assert (await first).status_code == 200
        assert (await held).status_code == 200
    assert _admission.running() == 0


@pytest.mark.asyncio
async def test_disconnect_cancels_the_shadow_handler(metric_reader: InMemoryMetricReader) -> None:
    """The mirror gives up: the handler never reaches its post-sleep code; the body was read."""
    probe = Probe()
    app = build(probe)
    before = shed_counts(metric_reader)
    exchange = Exchange(app, "POST", "/work", SHADOW, body=b'{"n": 1}')
    task = exchange.start()
    await until(lambda: probe.started == ["work"])
    exchange.disconnect()
    await asyncio.wait_for(task, 1)  # the middleware returns normally: nobody reads an answer
    await asyncio.sleep(0.4)
    assert probe.finished == []
    assert exchange.status is None
    assert _admission.running() == 0
    assert new_sheds(metric_reader, before) == {"disconnected": 1}

    # The same request left alone runs to its end and answers with the body it read.
    exchange = Exchange(app, "POST", "/work", SHADOW, body=b'{"n": 2}')
    await exchange.start()
    assert exchange.status == 200
    assert exchange.response_body == b'{"n":2}'
    assert probe.finished == ["work"]


@pytest.mark.asyncio
async def test_disconnect_cancels_a_request_without_body() -> None:
    """A GET never calls receive(): the watch reads ahead, and the app still gets the body."""
    probe = Probe()
    exchange = Exchange(build(probe), "GET", "/sleep", SHADOW)
    task = exchange.start()
    await until(lambda: probe.started == ["sleep"])
    exchange.disconnect()
    await asyncio.wait_for(task, 1)
    await asyncio.sleep(0.4)
    assert probe.finished == []


@pytest.mark.asyncio
async def test_primary_is_never_cancelled_on_disconnect() -> None:
    probe = Probe()
    exchange = Exchange(build(probe), "GET", "/sleep")
    task = exchange.start()
    await until(lambda: probe.started == ["sleep"])
    exchange.disconnect()
    await asyncio.wait_for(task, 2)
    assert probe.finished == ["sleep"]
    assert exchange.status == 200


@pytest.mark.asyncio
async def test_disconnect_after_the_response_keeps_background_tasks() -> None:
    """uvicorn answers http.disconnect once the response is sent: that cancels nothing."""
    probe = Probe()
    exchange = Exchange(build(probe), "GET", "/background", SHADOW)
    await asyncio.wait_for(exchange.start(), 2)
    assert exchange.status == 200
    assert probe.finished == ["background"]


@pytest.mark.asyncio
async def test_cancellation_can_be_turned_off() -> None:
    probe = Probe()
    exchange = Exchange(build(probe, cancel_disconnected_shadow=False), "GET", "/sleep", SHADOW)
    task = exchange.start()
    await until(lambda: probe.started == ["sleep"])
    exchange.disconnect()
    await asyncio.wait_for(task, 2)
    assert probe.finished == ["sleep"]


def _the_one_slot_taken(path: str) -> tuple[Probe, Any, Exchange, asyncio.Task[None]]:
    """An app admitting one shadow request at a time, and a shadow request to ``path``
    started in it (call inside the event loop)."""
    probe = Probe()
    app = build(probe, max_concurrent_shadow=1)
    exchange = Exchange(app, "GET", path, SHADOW)
    return probe, app, exchange, exchange.start()


@pytest.mark.asyncio
async def test_a_hanging_shadow_does_not_block_primaries_and_frees_its_slot() -> None:
    probe, app, hung, task = _the_one_slot_taken("/hang")
    await until(lambda: probe.started == ["hang"])
    async with client(app) as http:
        primaries = await asyncio.wait_for(
            asyncio.gather(*(http.get("/fast") for _ in range(10))), 2
        )
        assert [r.status_code for r in primaries] == [200] * 10
        assert (await http.get("/fast", headers={"x-shadow-request": "1"})).status_code == 503
        hung.disconnect()  # Envoy's mirror timeout
        await asyncio.wait_for(task, 1)
        assert (await http.get("/fast", headers={"x-shadow-request": "1"})).status_code == 200
    assert _admission.running() == 0


@pytest.mark.asyncio
async def test_slot_released_after_exception_base_exception_and_server_cancellation() -> None:
    probe = Probe()
    app = build(probe, max_concurrent_shadow=1)
    async with client(app) as http:
        assert (await http.get("/boom", headers={"x-shadow-request": "1"})).status_code == 500
    assert _admission.running() == 0

    class Stop(BaseException):
        pass

    async def raw(scope: Any, receive: Any, send: Any) -> None:
        raise Stop

    with pytest.raises(Stop):
        await Exchange(ShadowGuardMiddleware(raw), headers=SHADOW).start()
    assert _admission.running() == 0

    # The server cancels the request (shutdown): the cancellation is not ours, it propagates.
    exchange = Exchange(app, "GET", "/hang", SHADOW)
    task = exchange.start()
    await until(lambda: probe.started == ["hang"])
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _admission.running() == 0


@pytest.mark.asyncio
async def test_streaming_response_holds_its_slot_until_the_body_ends() -> None:
    probe, app, streaming, task = _the_one_slot_taken("/stream")
    await until(lambda: streaming.response_body == b"a")
    assert _admission.running() == 1
    shed = Exchange(app, "GET", "/fast", SHADOW)
    await shed.start()
    assert shed.status == 503
    probe.release.set()
    await asyncio.wait_for(task, 1)
    assert streaming.response_body == b"ab"
    assert _admission.running() == 0


@pytest.mark.asyncio
async def test_configure_changes_the_limit_at_runtime() -> None:
    probe = Probe()
    app = build(probe)  # no options: the process settings of the moment
    try:
        shadowguard.configure(max_concurrent_shadow=1)
        async with client(app) as http:
            first = asyncio.create_task(http.get("/slow", headers={"x-shadow-request": "1"}))
            await until(lambda: len(probe.started) == 1)
            assert (await http.get("/fast", headers={"x-shadow-request": "1"})).status_code == 503
            shadowguard.configure(max_concurrent_shadow=2)
            assert (await http.get("/fast", headers={"x-shadow-request": "1"})).status_code == 200
            shadowguard.configure(max_concurrent_shadow=0)  # shed every shadow request
            assert (await http.get("/fast", headers={"x-shadow-request": "1"})).status_code == 503
            assert (await http.get("/fast")).status_code == 200
            shadowguard.configure(max_concurrent_shadow=None)
            assert (await http.get("/fast", headers={"x-shadow-request": "1"})).status_code == 200
            probe.release.set()
            assert (await first).status_code == 200
    finally:
        _config.reset()
    assert _admission.running() == 0


@pytest.mark.asyncio
async def test_old_shadow_requests_are_not_started(metric_reader: InMemoryMetricReader) -> None:
    probe = Probe()
    app = build(probe, shadow_budget_seconds=5)
    before = shed_counts(metric_reader)
    now = time.time()
    async with client(app) as http:

        async def get(headers: dict[str, str]) -> httpx.Response:
            return await http.get("/sleep", headers=headers)

        old = await get({"x-shadow-request": "1", "x-request-start": f"t={now - 6:.3f}"})
        assert old.status_code == 503
        assert old.headers["x-shadowguard-shed"] == "budget"
        old_ms = await get(
            {"x-shadow-request": "1", "x-request-start": str(int(now * 1000) - 6000)}
        )
        assert old_ms.status_code == 503
        # The mirror's own timeout (Envoy's expected timeout) is shorter than the budget.
        mirror = await get(
            {
                "x-shadow-request": "1",
                "x-request-start": f"t={now - 1:.3f}",
                "x-envoy-expected-rq-timeout-ms": "500",
            }
        )
        assert mirror.status_code == 503
        assert probe.started == []
        fresh = await get({"x-shadow-request": "1", "x-request-start": f"t={time.time():.3f}"})
        unknown = await get({"x-shadow-request": "1"})  # no start header: age unknown
        garbage = await get({"x-shadow-request": "1", "x-request-start": "yesterday"})
        no_timeout = await get(
            {
                "x-shadow-request": "1",
                "x-request-start": f"t={now - 1:.3f}",
                "x-envoy-expected-rq-timeout-ms": "0",  # a route without timeout
            }
        )
        primary = await get({"x-request-start": f"t={now - 60:.3f}"})
    assert [r.status_code for r in (fresh, unknown, garbage, no_timeout, primary)] == [200] * 5
    assert new_sheds(metric_reader, before) == {"budget": 3}


@pytest.mark.asyncio
async def test_shadow_websocket_beyond_the_limit_is_closed() -> None:
    sent: list[dict[str, Any]] = []
    started: list[bool] = []

    async def raw(scope: Any, receive: Any, send: Any) -> None:
        started.append(True)

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "websocket.connect"}

    scope = {"type": "websocket", "path": "/ws", "headers": SHADOW}
    await ShadowGuardMiddleware(raw, max_concurrent_shadow=0)(scope, receive, send)
    assert started == []
    assert sent[0]["type"] == "websocket.close"
    assert sent[0]["code"] == 1013
    await ShadowGuardMiddleware(raw, max_concurrent_shadow=1)(scope, receive, send)
    assert started == [True]
    assert _admission.running() == 0


async def _nothing(scope: Any, receive: Any, send: Any) -> None: ...


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_concurrent_shadow", -1),
        ("max_concurrent_shadow", "32"),
        ("max_concurrent_shadow", True),
        ("shadow_budget_seconds", 0),
        ("shadow_budget_seconds", float("inf")),
        ("shadow_budget_seconds", "15"),
        ("cancel_disconnected_shadow", "yes"),
    ],
)
def test_bad_options_name_the_setting(option: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=f"{option}=.*accepted values"):
        ShadowGuardMiddleware(_nothing, **{option: value})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SHADOWGUARD_MAX_CONCURRENT_SHADOW", "-1"),
        ("SHADOWGUARD_MAX_CONCURRENT_SHADOW", "unlimited"),
        ("SHADOWGUARD_MAX_CONCURRENT_SHADOW", "3.5"),
        ("SHADOWGUARD_SHADOW_BUDGET_SECONDS", "0"),
        ("SHADOWGUARD_SHADOW_BUDGET_SECONDS", "nan"),
        ("SHADOWGUARD_SHADOW_BUDGET_SECONDS", "15s"),
        ("SHADOWGUARD_CANCEL_DISCONNECTED_SHADOW", "maybe"),
    ],
)
def test_bad_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    _config.reset()
    try:
        with pytest.raises(ConfigError, match=f"{variable}=.*accepted values"):
            ShadowGuardMiddleware(_nothing)
    finally:
        monkeypatch.delenv(variable)
        _config.reset()


def test_environment_values() -> None:
    env = {
        "SHADOWGUARD_MAX_CONCURRENT_SHADOW": " OFF ",
        "SHADOWGUARD_SHADOW_BUDGET_SECONDS": "2.5",
        "SHADOWGUARD_CANCEL_DISCONNECTED_SHADOW": "no",
    }
    settings = shadowguard.Settings.from_env(env)
    assert settings.max_concurrent_shadow is None
    assert settings.shadow_budget_seconds == 2.5
    assert settings.cancel_disconnected_shadow is False
    defaults = shadowguard.Settings.from_env({})
    assert (defaults.max_concurrent_shadow, defaults.shadow_budget_seconds) == (32, 15.0)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("t=1700000000.5", 1700000000.5),
        ("1700000000500", 1700000000.5),
        ("t=1700000000500000", 1700000000.5),
        ("1700000000500000000", 1700000000.5),
        ("soon", None),
        ("t=-1", None),
    ],
)
def test_request_start_units(raw: str, expected: float | None) -> None:
    assert _admission.request_start(raw) == expected


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.cancelling() is Python 3.11+")
@pytest.mark.asyncio
async def test_an_app_swallowing_the_cancellation_leaves_the_task_clean() -> None:
    """The watch withdraws its cancellation request, whoever caught it."""
    swallowed: list[bool] = []
    after: list[int] = []

    async def stubborn(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            swallowed.append(True)

    middleware = ShadowGuardMiddleware(stubborn)

    async def server(scope: Any, receive: Any, send: Any) -> None:
        await middleware(scope, receive, send)
        after.append(asyncio.current_task().cancelling())  # type: ignore[union-attr]
        await asyncio.sleep(0)  # the server's next await is not cancelled

    exchange = Exchange(server, "GET", "/", SHADOW)
    task = exchange.start()
    await asyncio.sleep(0.05)
    exchange.disconnect()
    await asyncio.wait_for(task, 1)
    assert swallowed == [True]
    assert after == [0]
    assert _admission.running() == 0


@pytest.mark.asyncio
async def test_disconnect_in_the_middle_of_a_stream_cancels_it() -> None:
    probe = Probe()
    streaming = Exchange(build(probe), "GET", "/stream", SHADOW)
    task = streaming.start()
    await until(lambda: streaming.response_body == b"a")
    streaming.disconnect()
    await asyncio.wait_for(task, 1)
    assert streaming.response_body == b"a"
    assert _admission.running() == 0
