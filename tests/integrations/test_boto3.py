"""boto3 against a real moto server: nothing written in shadow, all of it as primary; reads real."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shadowguard
from shadowguard import ShadowSideEffectBlocked
from shadowguard._patching import unwrapped
from shadowguard.errors import ConfigError
from shadowguard.integrations import boto3 as sink
from shadowguard.integrations.boto3 import _hooks
from tests.integrations._support import installing, shadow_and_primary_threads
from tests.peers.moto import MotoPeer

SINK = "boto3"


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _keys(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def _bucket(moto: MotoPeer) -> tuple[Any, str]:
    s3 = moto.client("s3")
    bucket = moto.name("bucket")
    s3.create_bucket(Bucket=bucket)
    return s3, bucket


def _queue(moto: MotoPeer, sqs: Any, name: str = "queue") -> str:
    return str(sqs.create_queue(QueueName=moto.name(name))["QueueUrl"])


def _count(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


@pytest.mark.usefixtures("installed")
def test_s3_writes_leave_no_object_in_shadow_and_reads_are_real(moto: MotoPeer) -> None:
    s3, bucket = _bucket(moto)
    s3.put_object(Bucket=bucket, Key="kept", Body=b"primary data")
    with shadowguard.shadow() as scope:
        put = s3.put_object(Bucket=bucket, Key="new", Body=b"shadow data")
        s3.delete_object(Bucket=bucket, Key="kept")
        s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "kept"})
        moto.resource("s3").Object(bucket, "via-resource").put(Body=b"x")
        listed = _keys(s3, bucket)
        body = s3.get_object(Bucket=bucket, Key="kept")["Body"].read()
        head = s3.head_object(Bucket=bucket, Key="kept")
    assert listed == ["kept"]
    assert body == b"primary data"
    assert head["ContentLength"] == len(b"primary data")
    assert put["ETag"] == f'"{_md5(b"shadow data")}"'  # as S3's, for a single-part object
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert _keys(s3, bucket) == ["kept"]
    assert [(s.kind, s.target, s.detail["operation"]) for s in scope.suppressed] == [
        ("aws.call", f"s3:{bucket}", "PutObject"),
        ("aws.call", f"s3:{bucket}", "DeleteObject"),
        ("aws.call", f"s3:{bucket}", "CopyObject"),
        ("aws.call", f"s3:{bucket}", "PutObject"),
    ]
    assert scope.suppressed[0].detail["service"] == "s3"
    assert scope.suppressed[0].detail["reason"] == "write"
    # The same calls as primary change the bucket.
    s3.put_object(Bucket=bucket, Key="new", Body=b"primary")
    s3.delete_object(Bucket=bucket, Key="kept")
    assert _keys(s3, bucket) == ["new"]


@pytest.fixture
def moto_multipart(moto: MotoPeer) -> Iterator[MotoPeer]:
    """moto's state dump (the SES oracle) fails once a multipart upload's parts exist (a
    moto bug): the server is cleared after a test that makes them."""
    try:
        yield moto
    finally:
        moto.reset()


@pytest.mark.usefixtures("installed")
def test_s3_transfers_on_worker_threads_stay_shadow(moto_multipart: MotoPeer) -> None:
    """upload_file runs its parts on s3transfer's threads, which do not inherit context."""
    moto = moto_multipart
    s3, bucket = _bucket(moto)
    config = TransferConfig(
        multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024
    )
    big = b"x" * (11 * 1024 * 1024)
    with shadowguard.shadow() as scope:
        s3.upload_fileobj(io.BytesIO(big), bucket, "multi", Config=config)
        s3.upload_fileobj(io.BytesIO(b"small"), bucket, "single")
    assert _keys(s3, bucket) == []
    operations = sorted(s.detail["operation"] for s in scope.suppressed)
    assert operations == [
        "CompleteMultipartUpload",
        "CreateMultipartUpload",
        "PutObject",
        *["UploadPart"] * 3,
    ]
    s3.upload_fileobj(io.BytesIO(big), bucket, "multi", Config=config)
    assert _keys(s3, bucket) == ["multi"]
    with shadowguard.shadow():
        out = io.BytesIO()
        s3.download_fileobj(bucket, "multi", out, Config=config)
    assert out.getvalue() == big


@pytest.mark.usefixtures("installed")
def test_sqs_shadow_sends_nothing_and_receive_leaves_the_message_to_the_primary(
    moto: MotoPeer,
) -> None:
    sqs = moto.client("sqs")
    url = _queue(moto, sqs)
    sqs.send_message(QueueUrl=url, MessageBody="order 1")
    with shadowguard.shadow() as scope:
        sent = sqs.send_message(QueueUrl=url, MessageBody="shadow order")
        batch = sqs.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": "a", "MessageBody": "x"}, {"Id": "b", "MessageBody": "y"}],
        )
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        sqs.purge_queue(QueueUrl=url)
        depth = _count(sqs, url)
    assert depth == 1  # reads are real
    assert received.get("Messages", []) == []
    assert sent["MD5OfMessageBody"] == _md5(b"shadow order")
    assert sent["MessageId"]
    assert [e["Id"] for e in batch["Successful"]] == ["a", "b"]
    assert batch["Failed"] == []
    receive = scope.suppressed[2]
    assert (receive.detail["operation"], receive.detail["reason"]) == ("ReceiveMessage", "consume")
    # The primary still gets the message, and only that one.
    (message,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert message["Body"] == "order 1"
    with shadowguard.shadow():
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    assert _count(sqs, url) == 1  # neither deleted nor made visible again
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert _count(sqs, url) == 0


@pytest.mark.usefixtures("installed")
def test_a_long_poll_in_shadow_waits_as_an_empty_queue_would(
    moto: MotoPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(_hooks, "wait", waits.append)
    sqs = moto.client("sqs")
    url = _queue(moto, sqs)
    sqs.send_message(QueueUrl=url, MessageBody="m")
    with shadowguard.shadow():
        assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=20)
        assert "Messages" not in sqs.receive_message(QueueUrl=url)
    assert waits == [20]
    assert _count(sqs, url) == 1


@pytest.mark.usefixtures("installed")
def test_sns_publishes_reach_no_subscriber_in_shadow(moto: MotoPeer) -> None:
    sns, sqs = moto.client("sns"), moto.client("sqs")
    topic = sns.create_topic(Name=moto.name("topic"))["TopicArn"]
    url = _queue(moto, sqs, "subscriber")
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn["QueueArn"])
    with shadowguard.shadow() as scope:
        published = sns.publish(TopicArn=topic, Message="shadow")
        sns.publish_batch(
            TopicArn=topic, PublishBatchRequestEntries=[{"Id": "1", "Message": "shadow"}]
        )
        subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert published["MessageId"]
    assert len(subscriptions) == 1
    assert _count(sqs, url) == 0
    assert [s.target for s in scope.suppressed] == [f"sns:{topic.rsplit(':', 1)[-1]}"] * 2
    sns.publish(TopicArn=topic, Message="primary")
    (message,) = sqs.receive_message(QueueUrl=url)["Messages"]
    assert json.loads(message["Body"])["Message"] == "primary"


@pytest.mark.usefixtures("installed")
def test_ses_sends_no_mail_in_shadow(moto: MotoPeer) -> None:
    ses = moto.client("ses")
    ses.verify_email_identity(EmailAddress=moto.sender())
    mail = {
        "Source": moto.sender(),
        "Destination": {"ToAddresses": ["alice@example.test"]},
        "Message": {"Subject": {"Data": "Your order"}, "Body": {"Text": {"Data": "Thanks"}}},
    }
    with shadowguard.shadow() as scope:
        sent = ses.send_email(**mail)
        ses.send_raw_email(
            Source=moto.sender(),
            RawMessage={"Data": f"From: {moto.sender()}\r\nTo: a@example.test\r\n\r\nhi"},
        )
        quota = ses.get_send_quota()
    assert sent["MessageId"]
    assert quota["Max24HourSend"] > 0
    assert moto.sent_mail() == []
    assert scope.counts["aws.call"] == 2
    ses.send_email(**mail)
    (delivered,) = moto.sent_mail()
    assert delivered["subject"] == "Your order"


def _table(moto: MotoPeer) -> tuple[Any, str]:
    dynamodb = moto.client("dynamodb")
    table = moto.name("orders")
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName=table, Item={"id": {"S": "kept"}, "n": {"N": "1"}})
    return dynamodb, table


@pytest.mark.usefixtures("installed")
def test_dynamodb_items_are_absent_after_shadow_and_reads_are_real(moto: MotoPeer) -> None:
    dynamodb, table = _table(moto)
    key = {"id": {"S": "kept"}}
    with shadowguard.shadow() as scope:
        dynamodb.put_item(TableName=table, Item={"id": {"S": "new"}})
        dynamodb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET n = :n",
            ExpressionAttributeValues={":n": {"N": "2"}},
        )
        dynamodb.delete_item(TableName=table, Key={"id": {"S": "kept"}})
        batch = dynamodb.batch_write_item(
            RequestItems={table: [{"PutRequest": {"Item": {"id": {"S": "batch"}}}}]}
        )
        dynamodb.execute_statement(Statement=f"INSERT INTO \"{table}\" VALUE {{'id': 'partiql'}}")
        selected = dynamodb.execute_statement(Statement=f'SELECT * FROM "{table}"')["Items"]
        got = dynamodb.get_item(TableName=table, Key=key)["Item"]
        scanned = dynamodb.scan(TableName=table)["Items"]
        queried = dynamodb.query(
            TableName=table,
            KeyConditionExpression="id = :id",
            ExpressionAttributeValues={":id": {"S": "kept"}},
        )["Items"]
        resource = moto.resource("dynamodb").Table(table)
        resource.put_item(Item={"id": "resource"})
        with resource.batch_writer() as writer:
            writer.put_item(Item={"id": "batched"})
    assert batch["UnprocessedItems"] == {}
    assert got == {"id": {"S": "kept"}, "n": {"N": "1"}}
    assert scanned == queried == selected == [got]
    assert [s.detail["operation"] for s in scope.suppressed] == [
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "ExecuteStatement",
        "PutItem",
        "BatchWriteItem",
    ]
    assert dynamodb.scan(TableName=table)["Items"] == [got]
    dynamodb.put_item(TableName=table, Item={"id": {"S": "new"}})
    assert len(dynamodb.scan(TableName=table)["Items"]) == 2


def test_a_client_created_before_install_is_guarded(moto: MotoPeer) -> None:
    s3, bucket = _bucket(moto)
    with installing(sink), shadowguard.shadow():
        s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert _keys(s3, bucket) == []


def test_primary_calls_are_unchanged(moto: MotoPeer) -> None:
    """The same calls, with and without the integration, give the same answers."""

    def session(tag: str) -> list[Any]:
        s3, bucket = _bucket(moto)
        sqs = moto.client("sqs")
        url = _queue(moto, sqs, tag)
        put = s3.put_object(Bucket=bucket, Key=f"{tag}-k", Body=b"body")
        sent = sqs.send_message(QueueUrl=url, MessageBody="m")
        (message,) = sqs.receive_message(QueueUrl=url)["Messages"]
        with pytest.raises(s3.exceptions.NoSuchKey):
            s3.get_object(Bucket=bucket, Key="missing")
        return [
            put["ETag"],
            sent["MD5OfMessageBody"],
            message["Body"],
            s3.get_object(Bucket=bucket, Key=f"{tag}-k")["Body"].read(),
            "x-shadowguard-stub" in put["ResponseMetadata"]["HTTPHeaders"],
        ]

    bare = session("bare")
    with installing(sink):
        guarded = session("guarded")
    assert guarded == bare == [f'"{_md5(b"body")}"', _md5(b"m"), "m", b"body", False]


@pytest.mark.parametrize("below", [("requests", "http_client"), ("http_client",), ("requests",)])
@pytest.mark.usefixtures("installed")
def test_http_guards_below_send_allowed_reads_and_never_see_writes(
    moto: MotoPeer, below: tuple[str, ...]
) -> None:
    """With the urllib3 and http.client guards installed too, each call is judged once
    (keys with spaces, non-ASCII and a query-like part included)."""
    s3, bucket = _bucket(moto)
    dynamodb, table = _table(moto)
    key = "a b/ü?x=1&y"
    s3.put_object(Bucket=bucket, Key=key, Body=b"data")
    with contextlib.ExitStack() as stack:
        for name in below:
            stack.enter_context(installing(shadowguard.integrations.load(name)))
        with shadowguard.shadow() as scope:
            assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"data"
            assert s3.list_objects_v2(Bucket=bucket, Prefix="a b/")["KeyCount"] == 1
            assert dynamodb.scan(TableName=table)["Count"] == 1
            s3.put_object(Bucket=bucket, Key="new", Body=b"x")
    assert [s.kind for s in scope.suppressed] == ["aws.call"]
    assert _keys(s3, bucket) == [key]


@pytest.mark.usefixtures("installed")
def test_a_request_sent_past_the_client_is_refused(moto: MotoPeer) -> None:
    s3, bucket = _bucket(moto)
    model = s3.meta.service_model.operation_model("PutObject")
    request = s3._convert_to_request_dict(
        {"Bucket": bucket, "Key": "k", "Body": b"x"}, model, f"{moto.url}/{bucket}/k"
    )
    with shadowguard.shadow() as scope, pytest.raises(ShadowSideEffectBlocked):
        s3._endpoint.make_request(model, request)
    assert scope.suppressed[0].blocked
    assert _keys(s3, bucket) == []


@pytest.mark.usefixtures("installed")
def test_a_failure_while_answering_fails_closed(
    moto: MotoPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3, bucket = _bucket(moto)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(_hooks, "reply", broken)
    with shadowguard.shadow() as scope, pytest.raises(ShadowSideEffectBlocked, match="boom"):
        s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert scope.suppressed[0].blocked
    assert _keys(s3, bucket) == []
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")  # the primary path never answers
    assert _keys(s3, bucket) == ["k"]


@pytest.mark.usefixtures("installed")
def test_an_event_stream_answer_is_refused(moto: MotoPeer) -> None:
    lam = moto.client("lambda")
    with shadowguard.shadow() as scope, pytest.raises(ShadowSideEffectBlocked, match="event"):
        lam.invoke_with_response_stream(FunctionName="f")
    assert scope.suppressed[0].detail["operation"] == "InvokeWithResponseStream"


@pytest.mark.usefixtures("installed")
def test_invalid_parameters_fail_in_shadow_as_on_the_primary(moto: MotoPeer) -> None:
    from botocore.exceptions import ParamValidationError

    sqs = moto.client("sqs")
    with shadowguard.shadow() as scope, pytest.raises(ParamValidationError):
        sqs.send_message(QueueUrl="u")  # no MessageBody
    assert scope.suppressed == []


def test_options_move_operations_between_reads_and_writes(moto: MotoPeer) -> None:
    sqs = moto.client("sqs")
    url = _queue(moto, sqs)
    sqs.send_message(QueueUrl=url, MessageBody="m")
    s3, bucket = _bucket(moto)
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    with (
        installing(sink, reads=["sqs:ReceiveMessage"], writes=["s3:GetObject"]),
        shadowguard.shadow() as scope,
    ):
        (message,) = sqs.receive_message(QueueUrl=url)["Messages"]
        body = s3.get_object(Bucket=bucket, Key="k")["Body"].read()
    assert message["Body"] == "m"
    assert body == b""
    assert [(s.detail["operation"], s.detail["why"]) for s in scope.suppressed] == [
        ("GetObject", "install() option")
    ]


@pytest.mark.parametrize(
    "options",
    [
        {"reads": ["ReceiveMessage"]},
        {"reads": "sqs"},
        {"writes": ["sqs:receiveMessage"]},
        {"reads": ["sqs:ReceiveMessage"], "writes": ["sqs:ReceiveMessage"]},
        {"reads": [3]},
    ],
)
def test_bad_options_are_refused_at_install(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="boto3 integration"):
        sink.install(**options)
    assert not shadowguard.installed()


@pytest.mark.usefixtures("installed")
def test_shadow_and_primary_threads_at_once(moto: MotoPeer) -> None:
    s3, bucket = _bucket(moto)

    def put(shadow: bool, n: int, i: int) -> None:
        s3.put_object(Bucket=bucket, Key=f"{'shadow' if shadow else 'primary'}-{n}-{i}", Body=b"x")

    assert shadow_and_primary_threads(put, threads=4, calls=10) == []
    keys = _keys(s3, bucket)
    assert len(keys) == 20
    assert all(k.startswith("primary-") for k in keys)


@pytest.mark.asyncio
@pytest.mark.usefixtures("installed")
async def test_asyncio_tasks_keep_their_own_mode(moto: MotoPeer) -> None:
    import asyncio

    s3, bucket = _bucket(moto)

    async def put(key: str, shadow: bool) -> None:
        if shadow:
            with shadowguard.shadow():
                await asyncio.to_thread(
                    shadowguard.propagate(s3.put_object), Bucket=bucket, Key=key, Body=b"x"
                )
        else:
            await asyncio.to_thread(s3.put_object, Bucket=bucket, Key=key, Body=b"x")

    await asyncio.gather(*(put(f"k{i}", i % 2 == 0) for i in range(6)))
    assert _keys(s3, bucket) == ["k1", "k3", "k5"]


def test_shadow_mode_process_flag_guards_without_a_scope(
    moto: MotoPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shadowguard.contract import PROCESS

    s3, bucket = _bucket(moto)
    with installing(sink):
        monkeypatch.setattr(PROCESS, "shadow", True)
        s3.put_object(Bucket=bucket, Key="k", Body=b"x")
        listed = _keys(s3, bucket)
        monkeypatch.setattr(PROCESS, "shadow", False)
    assert listed == []
    assert _keys(s3, bucket) == []


@pytest.mark.usefixtures("installed")
def test_a_failed_read_leaves_nothing_let_out(moto: MotoPeer, closed_port: int) -> None:
    """A read that raises (no server) does not leave its endpoint open for later requests."""
    from botocore.config import Config
    from botocore.exceptions import EndpointConnectionError

    s3, bucket = _bucket(moto)
    dead = MotoPeer(f"http://127.0.0.1:{closed_port}", moto.prefix)
    offline = dead.client("s3", config=Config(retries={"max_attempts": 1}))
    with shadowguard.shadow() as scope:
        with pytest.raises(EndpointConnectionError):
            offline.list_objects_v2(Bucket=bucket)
        assert _hooks._allowed.get() is None
        s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert scope.counts["aws.call"] == 1
    assert _keys(s3, bucket) == []


@pytest.mark.usefixtures("installed")
def test_a_client_made_in_shadow_writes_as_primary_afterwards(moto: MotoPeer) -> None:
    _, bucket = _bucket(moto)
    with shadowguard.shadow():
        made = moto.client("s3")
        made.put_object(Bucket=bucket, Key="shadow", Body=b"x")
        paginator = made.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    made.put_object(Bucket=bucket, Key="primary", Body=b"x")
    assert [o["Key"] for page in paginator for o in page.get("Contents", [])] == ["primary"]


@pytest.mark.usefixtures("installed")
def test_shadow_transfers_never_take_the_crt_client() -> None:
    """The CRT S3 client sends from native code, past botocore: shadow keeps the classic one."""
    import boto3.s3.transfer
    from botocore.exceptions import MissingDependencyException

    crt = TransferConfig(preferred_transfer_client="crt")
    with shadowguard.shadow():
        assert boto3.s3.transfer._should_use_crt(crt) is False

    def choice(should_use_crt: Any) -> Any:
        try:
            return should_use_crt(crt)
        except MissingDependencyException as exc:  # boto3 1.36 and later, without the CRT
            return type(exc)

    # The primary's choice is the client's own, whatever the boto3 release makes of it.
    original = unwrapped(boto3.s3.transfer._should_use_crt)
    assert choice(boto3.s3.transfer._should_use_crt) == choice(original)


_OPS = st.lists(
    st.tuples(st.booleans(), st.sampled_from(["put", "delete", "copy"]), st.sampled_from("abc")),
    max_size=12,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_OPS)
@pytest.mark.usefixtures("installed")
def test_the_bucket_is_what_the_primary_calls_alone_make_it(moto: MotoPeer, ops: Any) -> None:
    """Any mix of shadow and primary writes: the bucket holds exactly the primary's."""
    s3 = moto.client("s3")
    bucket = moto.name(f"b{uuid.uuid4().hex[:8]}")
    s3.create_bucket(Bucket=bucket)
    model: dict[str, bytes] = {}
    for n, (in_shadow, op, key) in enumerate(ops):
        body = f"{n}".encode()
        with shadowguard.shadow() if in_shadow else contextlib.nullcontext():
            if op == "put":
                s3.put_object(Bucket=bucket, Key=key, Body=body)
            elif op == "delete":
                s3.delete_object(Bucket=bucket, Key=key)
            elif key in model:
                s3.copy_object(
                    Bucket=bucket, Key=f"{key}2", CopySource={"Bucket": bucket, "Key": key}
                )
        if in_shadow:
            continue
        if op == "put":
            model[key] = body
        elif op == "delete":
            model.pop(key, None)
        elif key in model:
            model[f"{key}2"] = model[key]
    assert {
        k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in _keys(s3, bucket)
    } == model
