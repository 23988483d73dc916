"""An ASGI application under a real uvicorn process on a free loopback port.

uvicorn's ``--fd`` would avoid the port race, but it wraps the socket as AF_UNIX, so asyncio
never sets TCP_NODELAY on accepted connections and every response waits about 40 ms for
Nagle and the client's delayed ACK.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from tests.peers.processes import stop_process


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without shadowguard and OpenTelemetry settings, plus ``extra``.

    ``DJANGO_SETTINGS_MODULE`` goes too: the Django test modules set it at collection, and a
    service started here must read its own.
    """
    skip = ("SHADOW", "OTEL_", "DJANGO_SETTINGS_MODULE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    env.update(extra)
    return env


class UvicornService:
    """``uvicorn APP`` in ``cwd`` with ``env``; ready once ``ready_path`` answers at all."""

    def __init__(
        self,
        app: str,
        *,
        cwd: Path,
        env: Mapping[str, str],
        ready_path: str = "/",
        lifespan: str = "auto",
        timeout: float = 30.0,
    ) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--lifespan",
                lifespan,
                app,
            ],
            cwd=cwd,
            env=dict(env),
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{app} exited with status {self.process.returncode}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}{ready_path}", timeout=2)
                break
            except urllib.error.HTTPError:
                break  # an HTTP error status: up and answering
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{app} did not start in {timeout} s") from None
                time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.process)


class InThread:
    """An ASGI application under a real uvicorn server in a daemon thread of this process,
    on a free loopback port (for tests that read the application's state directly)."""

    def __init__(self, app: object) -> None:
        import threading

        import uvicorn

        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")  # type: ignore[arg-type]
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        self.port: int = self.server.servers[0].sockets[0].getsockname()[1]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
