"""Who waits on whom in PostgreSQL, sampled from a connection of its own during a load."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import psycopg

from tests.peers.postgres import PG_HOST, PG_PORT, PG_USER

# Backends of this database waiting on a lock, with the application name of each blocker
# and how long the waiting statement has run (it waits from shortly after its start).
_WAITS = """
SELECT w.pid, w.query_start, w.application_name, b.application_name,
       extract(epoch FROM clock_timestamp() - w.query_start)
FROM pg_stat_activity AS w
CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS blocker(pid)
JOIN pg_stat_activity AS b ON b.pid = blocker.pid
WHERE w.datname = current_database() AND w.wait_event_type = 'Lock'
"""
_IDLE_IN_TRANSACTION = """
SELECT application_name, count(*) FROM pg_stat_activity
WHERE datname = current_database() AND state LIKE 'idle in transaction%'
GROUP BY application_name
"""


@dataclass
class Wait:
    """One statement of ``waiter`` seen waiting: the longest it was seen waiting, on whom."""

    waiter: str
    seconds: float
    blockers: set[str] = field(default_factory=set)


class LockSampler:
    """Samples lock waits every ``interval`` seconds until :meth:`stop`.

    A wait is one waiting statement (backend pid and statement start), counted once however
    often it is seen; its length is the longest time since the statement started at which
    it was seen waiting. Waits shorter than the interval may be missed: the count is a lower
    bound, the longest wait is exact to within one interval.
    """

    def __init__(self, database: str, interval: float = 0.005) -> None:
        self._conn = psycopg.connect(
            host=PG_HOST,
            port=PG_PORT,
            user=PG_USER,
            dbname=database,
            autocommit=True,
            application_name="shadowguard-lock-sampler",
        )
        self._interval = interval
        self._stop = threading.Event()
        self.samples = 0
        self.waits: dict[tuple[int, object], Wait] = {}
        #: The most sessions of each application seen idle inside a transaction at once.
        self.idle_in_transaction: dict[str, int] = {}
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="lock-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.wait(self._interval):
                rows = self._conn.execute(_WAITS).fetchall()
                self.samples += 1
                for pid, started, waiter, blocker, seconds in rows:
                    wait = self.waits.setdefault((pid, started), Wait(str(waiter), 0.0))
                    wait.seconds = max(wait.seconds, float(seconds))
                    wait.blockers.add(str(blocker))
                for name, count in self._conn.execute(_IDLE_IN_TRANSACTION):
                    seen = self.idle_in_transaction.get(str(name), 0)
                    self.idle_in_transaction[str(name)] = max(seen, int(count))
        except BaseException as exc:  # noted for stop(): a silent sampler would count nothing
            self._error = exc

    def stop(self) -> None:
        """Stop sampling; raises what stopped the sampler early, if anything did."""
        self._stop.set()
        self._thread.join(timeout=10)
        self._conn.close()
        if self._error is not None:
            raise AssertionError(f"the lock sampler failed: {self._error!r}") from self._error

    def waits_of(self, waiter: str, blocker: str) -> list[float]:
        """The lengths of the waits of ``waiter`` on ``blocker`` (application names)."""
        return sorted(
            w.seconds for w in self.waits.values() if w.waiter == waiter and blocker in w.blockers
        )
