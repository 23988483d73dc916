"""A throwaway PostgreSQL cluster of a test's own, which the test may stop and restart.

The shared server at 127.0.0.1:5432 serves every other test: a restart is only ever done
to a cluster started here, on a free port, in a temporary folder owned by ``postgres``
(``initdb`` and ``pg_ctl`` refuse to run as root).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.peers.services import service_missing


@dataclass
class Cluster:
    """A running cluster: its port, and how to restart it."""

    bin: str
    data: str
    port: int
    as_user: list[str]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data} -c fsync=off"
        # The server logs to a file: on a pipe it would hold the pipe open after pg_ctl exits.
        log = os.path.join(self.data, "server.log")
        command = [f"{self.bin}/pg_ctl", "-D", self.data, "-l", log, "-o", options, "-w"]
        subprocess.run(
            [*self.as_user, *command, *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )

    def restart(self) -> None:
        """Stop at once (``-m immediate``: connections are cut mid-statement) and start again."""
        self._ctl("-m", "immediate", "restart")

    def stop(self) -> None:
        self._ctl("-m", "immediate", "stop")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def own_postgres() -> Iterator[Cluster]:
    """A new PostgreSQL cluster for this test only, stopped and removed after it."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        service_missing("PostgreSQL's initdb (/usr/lib/postgresql/*/bin/initdb)")
    bin_dir = os.path.dirname(found[-1])
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data = tempfile.mkdtemp(prefix="sg-pg-")
    if as_user:
        shutil.chown(data, "postgres", "postgres")
    subprocess.run(
        [*as_user, f"{bin_dir}/initdb", "-D", data, "--auth=trust", "-U", "postgres"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    cluster = Cluster(bin_dir, data, _free_port(), as_user)
    cluster._ctl("start")
    try:
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(data, ignore_errors=True)
