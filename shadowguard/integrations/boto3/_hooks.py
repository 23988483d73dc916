"""The hooks on botocore's classes, in the order a shadow call meets them.

- ``BaseClient._make_api_call``: keeps the call's parameters for the hooks below (the
  verdict on a PartiQL statement, the answer that echoes a batch).
- ``BaseClient._make_request``: reached after botocore validated and serialized the
  parameters and ran the ``before-call`` handlers (a ``Stubber`` or moto's mock answer
  there and never get here). A read runs, through the client's own endpoint only; a
  write or a consume is answered from the output shape and recorded; nothing is sent.
- ``Endpoint._send``: the one place botocore hands a request to its HTTP session. In
  shadow it sends only the read the client hook let out, inside
  :func:`~shadowguard._outbound.passing_down` (so the urllib3 and http.client guards
  below send it unjudged); any other request is refused.
- ``s3transfer.futures.BoundedExecutor.submit``: ``upload_file``, ``download_file`` and
  ``copy`` run their calls on s3transfer's worker threads, which do not inherit context
  variables; in shadow each task runs in a copy of the caller's context, so it is shadow.
- ``boto3.s3.transfer._should_use_crt``: with ``awscrt`` installed, boto3 may hand a
  transfer to the CRT S3 client, which sends from native code past every hook above; in
  shadow the classic (guarded) transfer manager is always chosen.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Mapping
from typing import Any

from botocore.awsrequest import AWSResponse

from shadowguard._outbound import STUB_HEADER, passing_down, redact_url
from shadowguard.contract import (
    PROCESS,
    Action,
    Kind,
    mark_wrapped,
    record,
    refuse,
    scope_now,
)
from shadowguard.integrations.boto3._replies import reply
from shadowguard.integrations.boto3._verdicts import CONSUME, READ, verdict

__all__ = [
    "classic_transfers_hook",
    "make_api_call_hook",
    "make_request_hook",
    "overrides",
    "send_hook",
    "submit_hook",
]

#: ``(service, operation) -> verdict`` from ``install(reads=..., writes=...)``.
overrides: dict[tuple[str, str], str] = {}
# The client whose call is being made and its parameters (shadow only).
_call: contextvars.ContextVar[tuple[Any, Mapping[str, Any]] | None] = contextvars.ContextVar(
    "shadowguard_boto3_call", default=None
)
# The endpoint a read the client hook let out is going through (shadow only).
_allowed: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "shadowguard_boto3_allowed", default=None
)
#: Waits as an empty long poll would (a hook for tests, which must not sleep).
wait: Callable[[float], None] = time.sleep
# Parameters that name what a call acts on, in the order they are looked for.
_RESOURCE_PARAMS = (
    "Bucket",
    "QueueUrl",
    "TopicArn",
    "TargetArn",
    "TableName",
    "StreamName",
    "StreamARN",
    "DeliveryStreamName",
    "FunctionName",
    "StateMachineArn",
    "EventBusName",
    "SecretId",
    "KeyId",
    "Destination",
)
_REMEDY = (
    "Wrap the call in @shadowguard.side_effect, or, if it changes nothing, let it run in "
    "shadow with shadowguard.install(boto3={'reads': ['SERVICE:Operation']})"
)


def _resource(service: str, params: Mapping[str, Any]) -> str:
    for name in _RESOURCE_PARAMS:
        value = params.get(name)
        if isinstance(value, str) and value:
            # A queue URL's or an ARN's last part: the queue, topic or function name.
            return f"{service}:{value.rstrip('/').rsplit('/', 1)[-1].rsplit(':', 1)[-1]}"
    return service


def make_api_call_hook(original: Callable[..., Any]) -> Callable[..., Any]:

    def _make_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, operation_name, api_params)
        params = api_params if isinstance(api_params, Mapping) else {}
        token = _call.set((self, params))
        try:
            return original(self, operation_name, api_params)
        finally:
            _call.reset(token)

    return mark_wrapped(_make_api_call, original)


def _params(client: Any) -> Mapping[str, Any]:
    """The parameters of the call ``client`` is making (empty if it came another way)."""
    call = _call.get()
    return call[1] if call is not None and call[0] is client else {}


def _answer(
    client: Any,
    model: Any,
    request_dict: Mapping[str, Any],
    params: Mapping[str, Any],
    verdict_: str,
    why: str,
) -> tuple[AWSResponse, dict[str, Any]]:
    """The stand-in for a write or a consume: recorded, never sent."""
    service = model.service_model.service_name
    meta = client.meta
    region = meta.region_name or ""
    target = _resource(service, params)
    detail = {
        "service": service,
        "region": region,
        "endpoint": redact_url(str(meta.endpoint_url)),
        "reason": verdict_,
        "why": why,
    }
    if model.has_event_stream_output:
        raise refuse(
            Kind.AWS_CALL,
            target,
            model.name,
            f"{service}.{model.name} in shadow traffic (its answer is an event stream, "
            "which shadowguard cannot make up)",
            remedy=_REMEDY,
            detail=detail,
        )
    try:
        parsed = reply(
            model,
            params,
            region=region,
            endpoint=str(meta.endpoint_url),
            consume=verdict_ == CONSUME,
        )
    except Exception as exc:
        raise refuse(
            Kind.AWS_CALL,
            target,
            model.name,
            f"{service}.{model.name} in shadow traffic (shadowguard could not make up its "
            f"answer: {exc!r})",
            remedy=_REMEDY,
            detail=detail,
        ) from exc
    record(Kind.AWS_CALL, target, model.name, detail, action=Action.STUBBED)
    if verdict_ == CONSUME:
        seconds = params.get("WaitTimeSeconds")
        if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds > 0:
            wait(min(seconds, 20))
    http = AWSResponse(str(request_dict.get("url", "")), 200, {STUB_HEADER: "1"}, None)
    http._content = b""
    return http, parsed


def make_request_hook(original: Callable[..., Any]) -> Callable[..., Any]:

    def _make_request(
        self: Any, operation_model: Any, request_dict: Any, request_context: Any
    ) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, operation_model, request_dict, request_context)
        params = _params(self)
        verdict_, why = verdict(
            operation_model.service_model.service_name,
            operation_model.name,
            str(operation_model.http.get("method", "POST")),
            params,
            overrides,
        )
        if verdict_ != READ:
            return _answer(self, operation_model, request_dict, params, verdict_, why)
        token = _allowed.set(self._endpoint)
        try:
            return original(self, operation_model, request_dict, request_context)
        finally:
            _allowed.reset(token)

    return mark_wrapped(_make_request, original)


def send_hook(original: Callable[..., Any]) -> Callable[..., Any]:

    def _send(self: Any, request: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, request)
        if _allowed.get() is self:
            with passing_down(str(request.method), str(request.url)):
                return original(self, request)
        target = redact_url(str(request.url))
        raise refuse(
            Kind.AWS_CALL,
            target,
            "send",
            f"{request.method} {target} sent by a botocore endpoint outside a client call "
            "in shadow traffic",
            remedy="Make AWS calls through a botocore/boto3 client, which shadowguard judges",
            detail={"service": "", "region": "", "reason": "unknown"},
        )

    return mark_wrapped(_send, original)


class _InContext:
    """An s3transfer task that runs in a copy of the context it was submitted from."""

    __slots__ = ("_context", "_task")

    def __init__(self, task: Any) -> None:
        self._task = task
        self._context = contextvars.copy_context()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._context.run(self._task, *args, **kwargs)


def submit_hook(original: Callable[..., Any]) -> Callable[..., Any]:

    def submit(self: Any, task: Any, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, task, *args, **kwargs)
        return original(self, _InContext(task), *args, **kwargs)

    return mark_wrapped(submit, original)


def classic_transfers_hook(original: Callable[..., Any]) -> Callable[..., Any]:

    def _should_use_crt(config: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(config)
        return False

    return mark_wrapped(_should_use_crt, original)
