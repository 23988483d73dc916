"""Real processes: a primary and a shadow uvicorn writing one SQLite file at once; exit flushes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shadowguard.capture import read_records
from tests.peers.uvicorn import UvicornService, clean_env

ROOT = Path(__file__).resolve().parents[2]


def test_primary_and_shadow_processes_share_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/capture.db"
    services = [
        UvicornService(
            "tests.capture._apps:asgi_app",
            cwd=ROOT,
            env=clean_env(SHADOWGUARD_CAPTURE=url, **extra),
            ready_path="/text",
        )
        for extra in ({}, {"SHADOW_MODE": "true"})
    ]
    n = 300
    try:

        def call(i: int) -> None:
            for service in services:
                request = urllib.request.Request(
                    f"{service.url}/orders/{i}", headers={"x-request-id": f"r-{i}"}
                )
                with urllib.request.urlopen(request, timeout=30) as response:
                    assert response.status == 200

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(call, range(n)))
    finally:
        for service in services:
            # SIGTERM: uvicorn shuts down (the lifespan shutdown flushes), then raises the
            # signal again, so no atexit hook runs.
            service.stop()
    errors: list[str] = []
    found = list(read_records(url, on_error=lambda where, e: errors.append(where)))
    assert errors == []
    pairs = Counter((r["request_id"], r["label"]) for r in found if r["path"] != "/text")
    assert pairs == Counter(
        {(f"r-{i}", label): 1 for i in range(n) for label in ("primary", "shadow")}
    )
    shadow = [r for r in found if r["label"] == "shadow" and r["path"] != "/text"]
    assert all(r["suppressions"] == {"call": 2} for r in shadow)


def test_uvicorn_shutdown_writes_what_is_still_queued(tmp_path: Path) -> None:
    """uvicorn leaves by raising SIGTERM again, past atexit: the lifespan shutdown flushes."""
    service = UvicornService(
        "tests.capture._apps:slow_app", cwd=ROOT, env=clean_env(CAPTURE_SLOW_DIR=str(tmp_path))
    )
    try:
        for i in range(20):
            request = urllib.request.Request(
                f"{service.url}/text", headers={"x-request-id": f"q-{i}"}
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 200
    finally:
        service.stop()  # at once: the slow sink still holds most of them in the queue
    ids = {r["request_id"] for r in read_records(tmp_path)}
    assert {f"q-{i}" for i in range(20)} <= ids


@pytest.mark.parametrize("scheme", ["sqlite", "jsonl"])
def test_a_normal_exit_writes_everything_queued(tmp_path: Path, scheme: str) -> None:
    url = f"{scheme}://{tmp_path}/{'capture.db' if scheme == 'sqlite' else 'records'}"
    script = textwrap.dedent(
        f"""
        from shadowguard.capture import CaptureSettings
        from shadowguard.middleware.asgi import ShadowGuardMiddleware
        from tests.capture._support import drive, json_app

        app = ShadowGuardMiddleware(json_app, capture=CaptureSettings(url={url!r}, queue_size=5000))
        for i in range(2000):
            drive(app, (b"x-request-id", str(i).encode()))
        # no flush(): the interpreter's exit must write what is still queued
        """
    )
    subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=clean_env(), check=True, timeout=120
    )
    ids = [r["request_id"] for r in read_records(url)]
    assert sorted(ids, key=int) == [str(i) for i in range(2000)]
