"""A real moto server (S3, SQS, SNS, SES, DynamoDB, ... over HTTP) on a free loopback port.

One server per test session, started by ``python -m moto.server`` and stopped by its
process id. Tests name their buckets, queues, topics and tables with a prefix of their
own. The oracle is a plain boto3 client used outside any shadow scope, and moto's own
``/moto-api/data.json`` (the mail SES accepted).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.peers.processes import stop_process
from tests.peers.services import service_missing
from tests.peers.uvicorn import clean_env

REGION = "us-east-1"


@dataclass
class MotoPeer:
    """Where the server is and this test's name prefix."""

    url: str
    prefix: str

    def name(self, what: str) -> str:
        """``what`` under this test's prefix (valid as a bucket, queue, topic or table name)."""
        return f"{self.prefix}-{what}"

    def client(self, service: str, **config: Any) -> Any:
        """A boto3 client of ``service`` pointed at the server (dummy credentials)."""
        import boto3

        return boto3.client(service, **self._at_server(), **config)

    def resource(self, service: str) -> Any:
        import boto3

        return boto3.resource(service, **self._at_server())

    def _at_server(self) -> dict[str, str]:
        """Where boto3 finds the server, and the dummy credentials it accepts."""
        return {
            "endpoint_url": self.url,
            "region_name": REGION,
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }

    def reset(self) -> None:
        """Forget every resource on the server (``POST /moto-api/reset``)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def sender(self) -> str:
        """This test's own sender address (SES mail is told apart by it)."""
        return f"{self.prefix}@example.test"

    def sent_mail(self) -> list[dict[str, Any]]:
        """The messages SES accepted from :meth:`sender` (from moto's state dump)."""
        with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=10) as response:
            ses = json.load(response).get("ses", {})
        kinds = ("Message", "RawMessage", "TemplateMessage")
        sent = [m for kind in kinds for m in ses.get(kind, ())]
        return [m for m in sent if self.sender() in str(m.get("source", m.get("raw_data", "")))]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def _moto_server() -> Iterator[str]:
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError:
        service_missing("moto[server] and boto3 (the AWS test server)")
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if process.poll() is not None:
                service_missing(f"moto server (exited with status {process.returncode})")
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    service_missing("moto server (did not answer in 60 s)")
                time.sleep(0.1)
        yield url
    finally:
        stop_process(process)


@pytest.fixture
def moto(_moto_server: str) -> MotoPeer:
    """The moto server, with a name prefix of this test's own."""
    return MotoPeer(_moto_server, f"sg{uuid.uuid4().hex[:10]}")
