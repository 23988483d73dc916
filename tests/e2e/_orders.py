"""Order services on one PostgreSQL table with a UNIQUE key, behind one Envoy.

The table is made before the services start (``create_all`` then leaves it alone), with a
UNIQUE index on ``sku`` the primary and the shadow copy of the same order contend on. Each
service connects with its own ``application_name``, so that ``pg_stat_activity`` tells
whose transaction a lock waits on. :func:`routes_config` routes each Host to the primary,
some with a mirror to a shadow cluster and some without, so both conditions go through the
same Envoy, the same listener and the same connections to the primary.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from shadowguard.demo.envoy import CLUSTER, CONFIG
from tests.peers.envoy import Envoy
from tests.peers.postgres import PG_HOST, PG_PORT, PG_USER
from tests.peers.uvicorn import UvicornService, clean_env

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_orders"
PRIMARY, SHADOW = "orders-primary", "orders-shadow"


def connect(database: str) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database, autocommit=True
    )


def create_orders_table(database: str, table: str) -> None:
    """The example's ``orders`` table, with a UNIQUE ``sku``."""
    with connect(database) as conn:
        conn.execute(
            f"""CREATE TABLE "{table}" (
                id SERIAL PRIMARY KEY,
                request_id VARCHAR(64) NOT NULL,
                sku VARCHAR(64) NOT NULL UNIQUE,
                quantity INTEGER NOT NULL CONSTRAINT "{table}_quantity_positive"
                    CHECK (quantity > 0),
                created_at TIMESTAMP WITH TIME ZONE DEFAULT now()
            )"""
        )


def stored(database: str, table: str, prefix: str) -> dict[str, list[int]]:
    """The ids stored per sku starting with ``prefix``, read through a connection of its own."""
    rows: dict[str, list[int]] = {}
    with connect(database) as conn:
        cursor = conn.execute(
            f'SELECT sku, id FROM "{table}" WHERE sku LIKE %s ORDER BY id', (f"{prefix}%",)
        )
        for sku, order_id in cursor:
            rows.setdefault(str(sku), []).append(int(order_id))
    return rows


def order_service(
    database: str,
    table: str,
    application_name: str,
    *,
    app: str = "app:app",
    cwd: Path = EXAMPLE,
    **env: str,
) -> UvicornService:
    """``app`` under uvicorn on ``table``, connecting as ``application_name``."""
    url = (
        f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"
        f"?application_name={application_name}"
    )
    return UvicornService(
        app,
        cwd=cwd,
        env=clean_env(ORDERS_DATABASE_URL=url, ORDERS_TABLE=table, **env),
        ready_path="/orders",
    )


class Orders:
    """Posts orders through Envoy, a Host per condition; keeps the id the primary answered
    for each sku and how many orders each condition sent."""

    def __init__(self, port: int, prefix: str, hosts: Mapping[str, str]) -> None:
        self.prefix = prefix
        self.hosts = dict(hosts)
        self.ids: dict[str, int] = {}
        self.sent: Counter[str] = Counter()
        self._numbers = iter(range(10**9))
        self._lock = threading.Lock()
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10, limits=limits)

    def order(self, condition: str) -> float:
        """One order; the seconds until its answer (201, or the test fails)."""
        with self._lock:
            sku = f"{self.prefix}{next(self._numbers)}"
            self.sent[condition] += 1
        begin = time.perf_counter()
        response = self.client.post(
            "/orders", json={"sku": sku, "quantity": 1}, headers={"Host": self.hosts[condition]}
        )
        latency = time.perf_counter() - begin
        assert response.status_code == 201, response.text
        self.ids[sku] = response.json()["id"]
        return latency

    def block(self, condition: str, n: int) -> list[float]:
        """``n`` orders one after the other."""
        return [self.order(condition) for _ in range(n)]

    def bursts(self, condition: str, bursts: int, size: int) -> list[float]:
        """``bursts`` times ``size`` orders at once (one thread each)."""
        latencies: list[float] = []
        with ThreadPoolExecutor(size) as pool:
            for _ in range(bursts):
                latencies += pool.map(lambda _: self.order(condition), range(size))
        return latencies

    def assert_stored_once(self, database: str, table: str) -> None:
        """Every order stored once, with the id the primary answered; nothing else."""
        expected = {sku: [i] for sku, i in self.ids.items()}
        assert stored(database, table, self.prefix) == expected

    def close(self) -> None:
        self.client.close()


def metrics(service: UvicornService, timeout: float = 5.0) -> dict[str, Any]:
    """The service's ``/metrics``; fails when it does not answer within ``timeout``."""
    response = httpx.get(f"{service.url}/metrics", timeout=timeout)
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


_VHOST = """\
                    - name: {name}
                      domains: ["{host}"]
                      request_headers_to_remove: [x-shadow-request]
                      routes:
                        - match: {{prefix: "/"}}
                          request_headers_to_add:
                            - header: {{key: x-request-start, value: "t=%START_TIME(%s.%3f)%"}}
                          route:
                            cluster: primary
                            timeout: {timeout}
"""
_MIRROR = """\
                            request_mirror_policies:
                              - cluster: {cluster}
"""


_BREAKER = """\
      circuit_breakers:
        thresholds:
          - priority: DEFAULT
            max_connections: {limit}
            max_pending_requests: 1
            max_requests: {limit}
            max_retries: 0
"""


def routes_config(
    primary_port: int,
    mirrors: Mapping[str, int | None],
    timeout: str = "0.5s",
    breakers: Mapping[str, int] | None = None,
) -> str:
    """Envoy config: each Host of ``mirrors`` to the primary, mirrored to the shadow at the
    port it maps to (None: not mirrored). The route ``timeout`` is also the mirror's; Envoy
    stamps ``x-request-start`` on every request and on the copy. ``breakers`` maps a Host to
    the copies its shadow cluster takes at once: Envoy refuses the rest itself."""
    vhosts, clusters = [], [CLUSTER.format(name="primary", port=primary_port)]
    for i, (host, shadow_port) in enumerate(mirrors.items()):
        vhosts.append(_VHOST.format(name=f"host_{i}", host=host, timeout=timeout))
        if shadow_port is not None:
            vhosts.append(_MIRROR.format(cluster=f"shadow_{i}"))
            cluster = CLUSTER.format(name=f"shadow_{i}", port=shadow_port)
            if breakers and host in breakers:
                cluster += _BREAKER.format(limit=breakers[host])
            clusters.append(cluster)
    return CONFIG.format(vhosts="".join(vhosts).rstrip("\n"), clusters="".join(clusters))


def copies_refused(proxy: Envoy, cluster: str) -> int:
    """Copies Envoy's circuit breakers on ``cluster`` refused (never sent to the shadow)."""
    name = f"cluster.{cluster}.upstream_rq_pending_overflow"
    return proxy.stats(name).get(name, 0)


def copies_sent(proxy: Envoy, cluster: str) -> int:
    """Requests Envoy sent to ``cluster`` (``shadow_<i>``: the copies of the i-th Host)."""
    name = f"cluster.{cluster}.upstream_rq_total"
    return proxy.stats(name).get(name, 0)


def settled(service: UvicornService, proxy: Envoy, cluster: str) -> bool:
    """Whether the shadow has answered every copy sent: shed, or admitted and ended."""
    data = metrics(service)
    shed = data["shed"].get("limit", 0) + data["shed"].get("budget", 0)
    return bool(shed + data["requests"].get("shadow", 0) == copies_sent(proxy, cluster))


def lowest_cpu_priority(service: UvicornService | Envoy) -> None:
    """Run ``service`` (or an Envoy) at nice 19: on one machine, what its own nodes (or a lower
    PriorityClass) give a shadow in production, the primary first whenever both want a CPU.
    Every thread: Linux keeps a priority per thread; later ones inherit the main thread's."""
    pid = service.process.pid
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.setpriority(os.PRIO_PROCESS, int(task.name), 19)


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` (``VmRSS`` in ``/proc/<pid>/status``), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


class RssPeak:
    """The highest resident memory of a process, sampled every ``interval`` s until stop()."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.peak = rss_mib(pid)
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, name="rss-peak", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.peak = max(self.peak, rss_mib(self.pid))
            except (OSError, AssertionError):  # the process ended: stop() reports the rest
                return

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.peak


def until(condition: Any, timeout: float, what: str) -> float:
    """Poll ``condition`` until true; seconds it took. Fails after ``timeout`` seconds."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.05)
    return time.monotonic() - start


@dataclass(frozen=True)
class Stack:
    """What a load or fault test runs on: the orders table in the session database, the
    services on it, Envoy, and the figures it notes."""

    database: str
    table: str
    service: Callable[..., UvicornService]
    envoy: Callable[[str], Envoy]
    figures: Callable[[str], None]

    def assert_stored_once(self, orders: Orders) -> None:
        orders.assert_stored_once(self.database, self.table)
