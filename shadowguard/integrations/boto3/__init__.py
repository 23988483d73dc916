"""boto3 and botocore: in shadow, AWS reads run; everything else is answered, never sent.

``install()`` patches botocore's classes, so every client is covered, those created
before it too (there is no per-client ``guard()``): ``BaseClient._make_api_call`` and
``_make_request`` (every call of every client, after botocore validated and serialized
its parameters), ``Endpoint._send`` (every request botocore sends), s3transfer's
executor (``upload_file`` and friends run on worker threads) and boto3's choice of the CRT
transfer client (native code botocore never sees: never in shadow). The primary path pays one
ContextVar read and one flag at each.

In shadow each call is judged from the botocore service model (``_verdicts``): reads
(``Get*``, ``List*``, ``Describe*``, ``Head*``, ``BatchGet*``, ``Search*``, ``Query``,
``Scan``, HTTP ``GET``/``HEAD``) run, marked as let out so the urllib3 and http.client
guards below send them unjudged; everything else is answered with a response made from
the operation's output shape (``_replies``: plausible ids, ETags, MessageIds) and
recorded as ``Suppression(kind="aws.call")``. Consumers (SQS ``ReceiveMessage``) get an
empty result, so the primary's consumers still get every message. An explicit table
(``EXCEPTIONS``) covers operations whose name misleads; ``install(reads=..., writes=...)``
overrides it per operation.

The package, in the order a shadow call meets it:

- ``_hooks``: the patched methods; a read runs, a write is answered and recorded.
- ``_verdicts``: read, write or consume, and why.
- ``_replies``: the answer a suppressed call gets.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shadowguard.contract import Patches, class_method, missing_extra_error
from shadowguard.errors import ConfigError

try:
    from botocore.client import BaseClient
    from botocore.endpoint import Endpoint
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise missing_extra_error("botocore", "boto3") from exc

from shadowguard.integrations.boto3 import _hooks
from shadowguard.integrations.boto3._verdicts import EXCEPTIONS, READ, WRITE

__all__ = ["EXCEPTIONS", "install", "uninstall"]

_patches = Patches("boto3")


def _original(cls: type, name: str) -> Any:
    return class_method(cls, name, "boto3", "botocore>=1.31")


def _operations(value: Iterable[str], option: str) -> list[tuple[str, str]]:
    if isinstance(value, (str, bytes)):
        value = [value]
    keys = []
    for item in value:
        service, sep, operation = item.partition(":") if isinstance(item, str) else ("", "", "")
        if not (sep and service.strip() and operation.strip() and operation[0].isupper()):
            raise ConfigError(
                f"the boto3 integration's {option}={item!r} is not valid: give "
                "'service:Operation' names as boto3.client() and the API spell them, "
                "e.g. 'sqs:ReceiveMessage'"
            )
        keys.append((service.strip(), operation.strip()))
    return keys


def _apply(*, reads: Iterable[str] = (), writes: Iterable[str] = ()) -> None:
    chosen = {key: READ for key in _operations(reads, "reads")}
    for key in _operations(writes, "writes"):
        if key in chosen:
            raise ConfigError(
                f"the boto3 integration got {key[0]}:{key[1]} in both reads= and writes=: "
                "name it in one of them"
            )
        chosen[key] = WRITE
    _hooks.overrides.clear()
    _hooks.overrides.update(chosen)
    for name, hook in (
        ("_make_api_call", _hooks.make_api_call_hook),
        ("_make_request", _hooks.make_request_hook),
    ):
        _patches.setattr(BaseClient, name, hook(_original(BaseClient, name)))
    _patches.setattr(Endpoint, "_send", _hooks.send_hook(_original(Endpoint, "_send")))
    try:
        from s3transfer.futures import BoundedExecutor
    except ImportError:
        return
    _patches.setattr(
        BoundedExecutor, "submit", _hooks.submit_hook(_original(BoundedExecutor, "submit"))
    )
    try:
        import boto3.s3.transfer as transfer
    except ImportError:
        return
    if callable(getattr(transfer, "_should_use_crt", None)):
        hook = _hooks.classic_transfers_hook(transfer._should_use_crt)
        _patches.setattr(transfer, "_should_use_crt", hook)


def _forget() -> None:
    _hooks.overrides.clear()


def install(**options: Any) -> None:
    """Guard every botocore client (boto3's clients and resources); idempotent.

    ``reads``: ``'service:Operation'`` names that run in shadow though the rules would
    answer them (a computation your shadow needs, e.g. ``'sagemaker-runtime:InvokeEndpoint'``);
    ``writes``: names that are answered though the rules would run them. Clients created
    before ``install()`` are covered too (the patches are on the classes).
    """
    _patches.install(_apply, options)


def uninstall() -> None:
    """Restore botocore's classes (and s3transfer's executor)."""
    _patches.uninstall(after=_forget)
