"""The boto3 integration's verdicts and answers over botocore's own service models."""

from __future__ import annotations

from functools import cache
from typing import Any

import botocore
import botocore.session
import pytest
from botocore.response import StreamingBody
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowguard.integrations.boto3._replies import reply
from shadowguard.integrations.boto3._verdicts import CONSUME, EXCEPTIONS, READ, WRITE, verdict


@cache
def _session() -> Any:
    return botocore.session.get_session()


@cache
def _services() -> list[str]:
    return sorted(_session().get_available_services())


@cache
def _model(service: str) -> Any:
    return _session().get_service_model(service)


def _verdict(service: str, operation: str, params: dict[str, Any] | None = None) -> str:
    model = _model(service).operation_model(operation)
    return verdict(service, operation, model.http.get("method", "POST"), params or {}, {})[0]


#: Operations newer than the lowest botocore the extra allows (the compat session's).
_NEWER = {("sts", "AssumeRoot")}


@pytest.mark.parametrize(("service", "operation"), sorted(EXCEPTIONS))
def test_every_exception_names_a_real_operation(service: str, operation: str) -> None:
    assert _model(service).service_name == service  # as the client hook reads it
    if (service, operation) in _NEWER and operation not in _model(service).operation_names:
        pytest.skip(f"botocore {botocore.__version__} predates {service}:{operation}")
    assert operation in _model(service).operation_names
    assert _verdict(service, operation) == EXCEPTIONS[(service, operation)][0]


@pytest.mark.parametrize(
    ("service", "operation", "expected"),
    [
        ("s3", "GetObject", READ),
        ("s3", "HeadObject", READ),
        ("s3", "ListObjectsV2", READ),
        ("s3", "PutObject", WRITE),
        ("s3", "DeleteObjects", WRITE),
        ("sqs", "ReceiveMessage", CONSUME),
        ("sqs", "GetQueueAttributes", READ),
        ("sqs", "DeleteMessage", WRITE),
        ("sqs", "ChangeMessageVisibility", WRITE),
        ("sns", "Publish", WRITE),
        ("ses", "SendEmail", WRITE),
        ("sesv2", "SendEmail", WRITE),
        ("dynamodb", "Query", READ),
        ("dynamodb", "Scan", READ),
        ("dynamodb", "BatchGetItem", READ),
        ("dynamodb", "TransactWriteItems", WRITE),
        ("kinesis", "GetRecords", READ),
        ("kinesis", "GetShardIterator", READ),
        ("kinesis", "PutRecord", WRITE),
        ("secretsmanager", "GetSecretValue", READ),
        ("kms", "GenerateDataKey", READ),
        ("sts", "AssumeRole", READ),
        ("sts", "GetCallerIdentity", READ),
        ("lambda", "Invoke", WRITE),
        ("cloudsearchdomain", "Search", READ),
        ("route53", "TestDNSAnswer", READ),  # GET in the model
        ("iot", "ConfirmTopicRuleDestination", WRITE),  # a GET that changes state
    ],
)
def test_verdicts_of_common_operations(service: str, operation: str, expected: str) -> None:
    assert _verdict(service, operation) == expected


@given(
    st.text(alphabet=" \t\n", max_size=3),
    st.sampled_from(["select", "SELECT", "SeLeCt"]),
    st.text(max_size=30),
)
def test_a_partiql_select_reads(space: str, select: str, rest: str) -> None:
    statement = f"{space}{select} {rest}"
    assert _verdict("dynamodb", "ExecuteStatement", {"Statement": statement}) == READ


@given(st.text(max_size=40).filter(lambda s: not s.lstrip().lower().startswith("select")))
def test_any_other_partiql_statement_is_a_write(statement: str) -> None:
    assert _verdict("dynamodb", "ExecuteStatement", {"Statement": statement}) == WRITE
    batch = {"Statements": [{"Statement": "SELECT * FROM t"}, {"Statement": statement}]}
    assert _verdict("dynamodb", "BatchExecuteStatement", batch) == WRITE


def test_an_empty_partiql_batch_is_a_write() -> None:
    assert _verdict("dynamodb", "BatchExecuteStatement", {"Statements": []}) == WRITE


def _check(value: Any, shape: Any) -> None:
    """``value`` has the type ``shape`` says, and a structure its required members."""
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(value, dict)
        for name in shape.required_members:
            assert name in value, name
        for name, member in value.items():
            if name != "ResponseMetadata":
                _check(member, shape.members[name])
    elif kind == "list":
        assert value == []
    elif kind == "map":
        assert value == {}
    elif kind == "string":
        assert isinstance(value, str)
        if shape.enum:
            assert value in shape.enum
        if isinstance(shape.metadata.get("max"), int):
            assert len(value) <= shape.metadata["max"]
    elif kind == "blob":
        assert isinstance(value, (bytes, StreamingBody))


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(_services()))
def test_every_write_of_a_service_gets_an_answer_of_its_output_shape(service: str) -> None:
    model = _model(service)
    for name in model.operation_names:
        operation = model.operation_model(name)
        if _verdict(service, name) == READ or operation.has_event_stream_output:
            continue
        consume = _verdict(service, name) == CONSUME
        out = reply(operation, {}, region="eu-west-1", endpoint="https://x.test", consume=consume)
        assert out["ResponseMetadata"]["HTTPHeaders"]["x-shadowguard-stub"] == "1"
        if operation.output_shape is not None and not consume:
            _check(out, operation.output_shape)
