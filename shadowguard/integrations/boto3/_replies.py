"""What a suppressed AWS call returns: a response shaped by the operation's output model.

The top-level output structure gets its required members, every optional scalar member
(strings as plausible ids, ARNs, ETags and URLs by the member's name; the first value of
an enum; zero, false, now) and empty lists and maps; nested structures get their
required members only; a streaming payload is an empty ``StreamingBody``. A few
operations whose answer echoes the request (batch results per entry, an SQS message's
MD5, an S3 object's ETag) are completed by :data:`_FILLERS`. A consume (SQS
``ReceiveMessage``) gets nothing but the response metadata, as an empty poll does.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from botocore.model import OperationModel, Shape
from botocore.response import StreamingBody

from shadowguard._outbound import STUB_HEADER

__all__ = ["reply"]

_ACCOUNT = "123456789012"
_DEPTH = 8  # deeper required structures (recursive shapes) are left out
# Members that a real service returns only when the request asked for them, and that a
# made-up value would misstate (an encryption key, a checksum that matches nothing).
_OMITTED_PREFIXES = (
    "Checksum",
    "SSECustomer",
    "SSEKMS",
    "MD5OfMessage",
    "Expiration",
    "RequestCharged",
)


class _Call:
    """What the answer is made from: the call's service, region, endpoint and params."""

    __slots__ = ("endpoint", "params", "region", "service")

    def __init__(self, service: str, region: str, endpoint: str, params: Mapping[str, Any]):
        self.service = service
        self.region = region
        self.endpoint = endpoint.rstrip("/")
        self.params = params


def _hex() -> str:
    return uuid.uuid4().hex


def _string(name: str, shape: Shape, call: _Call) -> str:
    if shape.enum:
        return str(shape.enum[0])
    lowered = name.lower()
    if name == "ETag":
        value = f'"{_hex()}"'
    elif lowered.endswith("arn"):
        value = f"arn:aws:{call.service}:{call.region}:{_ACCOUNT}:shadowguard-{_hex()[:12]}"
    elif lowered.endswith("url"):
        value = f"{call.endpoint}/{_ACCOUNT}/shadowguard-{_hex()[:12]}"
    else:
        value = str(uuid.uuid4())
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if isinstance(high, int) and len(value) > high:
        value = value[:high]
    if isinstance(low, int) and len(value) < low:
        value = value.ljust(low, "0")
    return value


def _value(name: str, shape: Shape, call: _Call, depth: int) -> Any:
    kind = shape.type_name
    if kind == "structure":
        return _structure(shape, call, depth + 1, top=False)
    if kind == "list":
        return []
    if kind == "map":
        return {}
    if kind == "string":
        return _string(name, shape, call)
    if kind in ("integer", "long"):
        low = shape.metadata.get("min", 0)
        return max(0, low) if isinstance(low, int) else 0
    if kind in ("float", "double"):
        return 0.0
    if kind == "boolean":
        return False
    if kind == "timestamp":
        return datetime.now(timezone.utc)
    if shape.serialization.get("streaming") or shape.metadata.get("streaming"):
        return StreamingBody(io.BytesIO(b""), 0)
    return b""


_SCALARS = frozenset({"string", "integer", "long", "float", "double", "boolean", "timestamp"})


def _structure(shape: Any, call: _Call, depth: int, *, top: bool) -> dict[str, Any]:
    if depth > _DEPTH:
        return {}
    required = set(getattr(shape, "required_members", ()) or ())
    payload = shape.serialization.get("payload") if top else None
    out: dict[str, Any] = {}
    for name, member in shape.members.items():
        if name not in required:
            if not top or name.startswith(_OMITTED_PREFIXES):
                continue
            kind = member.type_name
            if kind == "structure" or (kind == "blob" and name != payload):
                continue
            if kind not in _SCALARS and kind not in ("list", "map", "blob"):
                continue
        out[name] = _value(name, member, call, depth)
    return out


def _md5(text: Any) -> str:
    data = text.encode() if isinstance(text, str) else bytes(text or b"")
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _entries(params: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = params.get(key) or ()
    return [e for e in value if isinstance(e, Mapping)]


def _sqs_send(params: Mapping[str, Any], out: dict[str, Any]) -> None:
    out["MD5OfMessageBody"] = _md5(params.get("MessageBody", ""))
    if not str(params.get("QueueUrl", "")).endswith(".fifo"):
        out.pop("SequenceNumber", None)


def _sqs_send_batch(params: Mapping[str, Any], out: dict[str, Any]) -> None:
    out["Successful"] = [
        {
            "Id": e.get("Id"),
            "MessageId": str(uuid.uuid4()),
            "MD5OfMessageBody": _md5(e.get("MessageBody", "")),
        }
        for e in _entries(params, "Entries")
    ]
    out["Failed"] = []


def _ids_succeed(params: Mapping[str, Any], out: dict[str, Any]) -> None:
    out["Successful"] = [{"Id": e.get("Id")} for e in _entries(params, "Entries")]
    out["Failed"] = []


def _sns_publish_batch(params: Mapping[str, Any], out: dict[str, Any]) -> None:
    entries = _entries(params, "PublishBatchRequestEntries")
    out["Successful"] = [{"Id": e.get("Id"), "MessageId": str(uuid.uuid4())} for e in entries]
    out["Failed"] = []


def _s3_put(params: Mapping[str, Any], out: dict[str, Any]) -> None:
    body = params.get("Body", b"")
    if hasattr(body, "getvalue"):  # botocore turns bytes into a BytesIO before we see it
        body = body.getvalue()
    if isinstance(body, (bytes, bytearray, str)):
        out["ETag"] = f'"{_md5(body)}"'


def _s3_delete_objects(params: Mapping[str, Any], out: dict[str, Any]) -> None:
    delete = params.get("Delete") or {}
    objects = delete.get("Objects", ()) if isinstance(delete, Mapping) else ()
    out["Deleted"] = [
        {k: o[k] for k in ("Key", "VersionId") if k in o} for o in objects if isinstance(o, Mapping)
    ]
    out["Errors"] = []


def _events_put(params: Mapping[str, Any], out: dict[str, Any]) -> None:
    out["Entries"] = [{"EventId": str(uuid.uuid4())} for _ in _entries(params, "Entries")]
    out["FailedEntryCount"] = 0


def _kinesis_put_records(params: Mapping[str, Any], out: dict[str, Any]) -> None:
    out["Records"] = [
        {"SequenceNumber": str(uuid.uuid4().int), "ShardId": "shardId-000000000000"}
        for _ in _entries(params, "Records")
    ]
    out["FailedRecordCount"] = 0


def _firehose_put_batch(params: Mapping[str, Any], out: dict[str, Any]) -> None:
    out["RequestResponses"] = [{"RecordId": _hex()} for _ in _entries(params, "Records")]
    out["FailedPutCount"] = 0


def _lambda_invoke(params: Mapping[str, Any], out: dict[str, Any]) -> None:
    invocation = params.get("InvocationType", "RequestResponse")
    out["StatusCode"] = {"Event": 202, "DryRun": 204}.get(str(invocation), 200)
    out.pop("FunctionError", None)
    out.pop("LogResult", None)
    out["ExecutedVersion"] = "$LATEST"


_FILLERS: Mapping[tuple[str, str], Callable[[Mapping[str, Any], dict[str, Any]], None]] = {
    ("sqs", "SendMessage"): _sqs_send,
    ("sqs", "SendMessageBatch"): _sqs_send_batch,
    ("sqs", "DeleteMessageBatch"): _ids_succeed,
    ("sqs", "ChangeMessageVisibilityBatch"): _ids_succeed,
    ("sns", "PublishBatch"): _sns_publish_batch,
    ("s3", "PutObject"): _s3_put,
    ("s3", "DeleteObjects"): _s3_delete_objects,
    ("events", "PutEvents"): _events_put,
    ("kinesis", "PutRecords"): _kinesis_put_records,
    ("firehose", "PutRecordBatch"): _firehose_put_batch,
    ("lambda", "Invoke"): _lambda_invoke,
}


def reply(
    model: OperationModel,
    params: Mapping[str, Any],
    *,
    region: str,
    endpoint: str,
    consume: bool,
) -> dict[str, Any]:
    """The parsed response a suppressed call returns (with ``ResponseMetadata``)."""
    service = model.service_model.service_name
    call = _Call(service, region, endpoint, params)
    out: dict[str, Any] = {}
    shape = model.output_shape
    if shape is not None and not consume:
        out = _structure(shape, call, 0, top=True)
        filler = _FILLERS.get((service, model.name))
        if filler is not None:
            filler(params, out)
    request_id = str(uuid.uuid4())
    out["ResponseMetadata"] = {
        "RequestId": request_id,
        "HTTPStatusCode": 200,
        "HTTPHeaders": {STUB_HEADER: "1", "x-amzn-requestid": request_id},
        "RetryAttempts": 0,
    }
    return out
