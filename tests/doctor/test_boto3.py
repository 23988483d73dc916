"""doctor and boto3: a client made at import is guarded once the boto3 integration is installed."""

from __future__ import annotations

from pathlib import Path

from tests.doctor._run import check_guarded, check_unguarded

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
    check_unguarded(tmp_path, APP, "boto3", "botocore client", "svc.queue")


def test_a_boto3_client_created_before_install_is_guarded(tmp_path: Path) -> None:
    check_guarded(tmp_path, APP, "boto3", "svc.queue")
