"""An ASGI application under a real uvicorn process, on a socket bound here (no port race)."""

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


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without shadowguard and OpenTelemetry settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHADOW", "OTEL_"))}
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
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port: int = self.sock.getsockname()[1]
        fd = self.sock.fileno()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--fd",
                str(fd),
                "--log-level",
                "warning",
                "--lifespan",
                lifespan,
                app,
            ],
            cwd=cwd,
            env=dict(env),
            pass_fds=(fd,),
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
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.sock.close()
