"""``--shadowguard-audit`` on a suite that calls AWS: counted per test, nothing written."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.peers.moto import MotoPeer
from tests.pytest_plugin._audit import guards_conftest, run_audit

pytest_plugins = ["pytester"]

TESTS = """
import os

import boto3


def client(service):
    return boto3.client(
        service,
        endpoint_url=os.environ["SG_MOTO_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_places_an_order():
    s3, sqs = client("s3"), client("sqs")
    bucket = os.environ["SG_BUCKET"]
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert s3.put_object(Bucket=bucket, Key="order", Body=b"1")["ETag"]
    queue = sqs.get_queue_url(QueueName=os.environ["SG_QUEUE"])["QueueUrl"]
    assert sqs.send_message(QueueUrl=queue, MessageBody="order")["MessageId"]
"""


def test_audit_counts_aws_suppressions_and_aws_keeps_nothing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, moto: MotoPeer
) -> None:
    s3, sqs = moto.client("s3"), moto.client("sqs")
    bucket, queue = moto.name("bucket"), moto.name("queue")
    s3.create_bucket(Bucket=bucket)
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    monkeypatch.setenv("SG_MOTO_URL", moto.url)
    monkeypatch.setenv("SG_BUCKET", bucket)
    monkeypatch.setenv("SG_QUEUE", queue)
    run_audit(
        pytester,
        TESTS,
        guards_conftest("boto3"),
        allow_hosts=urlsplit(moto.url).netloc,
        suppressed={"test_places_an_order": "aws.call=2"},
    )
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
