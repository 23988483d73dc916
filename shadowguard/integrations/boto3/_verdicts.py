"""Which AWS operations run in shadow: read, write or consume, from the service model.

An operation is a **read** (it runs) when its name says so (``Get*``, ``List*``,
``Describe*``, ``Head*``, ``BatchGet*``, ``Search*``, ``Query``, ``Scan``) or its HTTP
method in the service model is ``GET`` or ``HEAD`` (REST services); every other operation
is a **write** (answered from its output shape, never sent). :data:`EXCEPTIONS` overrides
both for operations whose name or method misleads, in either direction; a **consume**
takes work away from the primary's consumers (SQS ``ReceiveMessage`` hides the message it
returns) and is answered with an empty result instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["CONSUME", "EXCEPTIONS", "READ", "WRITE", "verdict"]

READ: Final = "read"
WRITE: Final = "write"
CONSUME: Final = "consume"

_READ_NAME = re.compile(r"(?:Get|List|Describe|Head|BatchGet|Search)[A-Z0-9].*|Query|Scan")

#: ``(service, operation) -> (verdict, why)``, ``service`` as ``boto3.client(service)``
#: names it. Checked before the name and method rules.
EXCEPTIONS: Final[Mapping[tuple[str, str], tuple[str, str]]] = {
    # Reads that change state: each hands work to the caller and hides it from the primary.
    ("sqs", "ReceiveMessage"): (CONSUME, "hides the messages it returns from other consumers"),
    ("stepfunctions", "GetActivityTask"): (CONSUME, "takes the task from the activity"),
    ("swf", "PollForActivityTask"): (CONSUME, "takes the task from the task list"),
    ("swf", "PollForDecisionTask"): (CONSUME, "takes the decision task from the task list"),
    ("codepipeline", "PollForJobs"): (CONSUME, "takes the job from the pipeline"),
    ("codepipeline", "PollForThirdPartyJobs"): (CONSUME, "takes the job from the pipeline"),
    ("datapipeline", "PollForTask"): (CONSUME, "takes the task from the pipeline"),
    # Read-named (or GET) operations that create or change something.
    ("cognito-identity", "GetId"): (WRITE, "creates the identity if it does not exist"),
    ("cognito-identity", "GetOpenIdTokenForDeveloperIdentity"): (
        WRITE,
        "registers the developer identity if it does not exist",
    ),
    ("iot", "ConfirmTopicRuleDestination"): (WRITE, "confirms the destination (a GET)"),
    # Computations and credentials: nothing is stored, and a fake answer breaks every
    # call that follows (a wrong plaintext, credentials that do not sign).
    ("kms", "Decrypt"): (READ, "a computation: nothing is stored"),
    ("kms", "Encrypt"): (READ, "a computation: nothing is stored"),
    ("kms", "ReEncrypt"): (READ, "a computation: nothing is stored"),
    ("kms", "GenerateDataKey"): (READ, "a computation: nothing is stored"),
    ("kms", "GenerateDataKeyWithoutPlaintext"): (READ, "a computation: nothing is stored"),
    ("kms", "GenerateDataKeyPair"): (READ, "a computation: nothing is stored"),
    ("kms", "GenerateDataKeyPairWithoutPlaintext"): (READ, "a computation: nothing is stored"),
    ("kms", "GenerateRandom"): (READ, "a computation: nothing is stored"),
    ("kms", "GenerateMac"): (READ, "a computation: nothing is stored"),
    ("kms", "VerifyMac"): (READ, "a computation: nothing is stored"),
    ("kms", "Sign"): (READ, "a computation: nothing is stored"),
    ("kms", "Verify"): (READ, "a computation: nothing is stored"),
    ("sts", "AssumeRole"): (READ, "temporary credentials: nothing is stored"),
    ("sts", "AssumeRoleWithSAML"): (READ, "temporary credentials: nothing is stored"),
    ("sts", "AssumeRoleWithWebIdentity"): (READ, "temporary credentials: nothing is stored"),
    ("sts", "AssumeRoot"): (READ, "temporary credentials: nothing is stored"),
    ("sts", "DecodeAuthorizationMessage"): (READ, "a computation: nothing is stored"),
    ("s3", "CreateSession"): (READ, "S3 Express session credentials: nothing is stored"),
    ("s3", "SelectObjectContent"): (READ, "queries an object: nothing is stored"),
}

#: DynamoDB PartiQL: a statement that starts with SELECT only reads.
_PARTIQL_SELECT = re.compile(r"\s*select\b", re.IGNORECASE)


def _partiql_reads(operation: str, params: Mapping[str, Any]) -> bool:
    if operation == "ExecuteStatement":
        return bool(_PARTIQL_SELECT.match(str(params.get("Statement", ""))))
    if operation == "BatchExecuteStatement":
        statements = params.get("Statements") or ()
        return bool(statements) and all(
            isinstance(s, Mapping) and _PARTIQL_SELECT.match(str(s.get("Statement", "")))
            for s in statements
        )
    return False


def verdict(
    service: str,
    operation: str,
    http_method: str,
    params: Mapping[str, Any],
    overrides: Mapping[tuple[str, str], str],
) -> tuple[str, str]:
    """``(verdict, why)`` for ``service.operation`` called with ``params``.

    ``overrides`` (from ``install(reads=..., writes=...)``) win over everything.
    """
    key = (service, operation)
    if key in overrides:
        return overrides[key], "install() option"
    if key in EXCEPTIONS:
        return EXCEPTIONS[key]
    if service == "dynamodb" and _partiql_reads(operation, params):
        return READ, "a PartiQL SELECT"
    if _READ_NAME.fullmatch(operation):
        return READ, "named as a read"
    if http_method.upper() in ("GET", "HEAD"):
        return READ, f"HTTP {http_method.upper()} in the service model"
    return WRITE, "not a read by name or method"
