"""doctor and boto3: a client made at import is guarded once the boto3 integration is installed."""

from __future__ import annotations

from pathlib import Path

from tests._cli import json_report
from tests.doctor._run import doctor, subjects, write

APP = """\
import boto3
from shadowguard.middleware.wsgi import ShadowGuardMiddleware
import shadowguard

queue = boto3.client(
    "sqs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
)
{install}

def inner(environ, start_response):
    queue.send_message(QueueUrl="https://sqs.example.test/1/q", MessageBody="order")

app = ShadowGuardMiddleware(inner)
"""


def test_a_boto3_client_without_its_integration_is_unguarded(tmp_path: Path) -> None:
    write(tmp_path, "svc.py", APP.format(install=""))
    result = doctor(tmp_path, "svc:app", "--json")
    data = json_report(result)
    assert result.returncode == 1
    assert sorted(subjects(data)) == ["boto3", "botocore client"]
    client = next(f for f in data["unguarded"] if f["subject"] == "botocore client")
    assert "svc.queue" in client["problem"]
    assert "shadowguard.install('boto3')" in client["remedy"]


def test_a_boto3_client_created_before_install_is_guarded(tmp_path: Path) -> None:
    write(tmp_path, "svc.py", APP.format(install="shadowguard.install('boto3')"))
    result = doctor(tmp_path, "svc:app", "--json")
    data = json_report(result)
    assert result.returncode == 0, data["unguarded"]
    assert data["guarded"] == {"boto3": "by the boto3 integration"}
    assert [(c["name"], c["guarded"]) for c in data["live_clients"]] == [("svc.queue", True)]
