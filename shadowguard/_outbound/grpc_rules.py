"""The gRPC rules: which shadow calls go out (GrpcAllow), what answers some (GrpcStub).

A gRPC method is named by its full path, ``/package.Service/Method``, compared exactly:
no prefixes, globs or case folding, so an allow rule for ``/shop.Orders/Get`` never lets
out ``/shop.Orders/GetAndCancel``, ``/shop.Orders/get`` or ``/shop.Orders/Get/../Cancel``.
A shadow call goes out only if a :class:`GrpcAllow` rule names its method (read-only
methods, by the application's own judgement: gRPC has no safe verbs); a
:class:`GrpcStub` rule answers it without contacting the server; every other call is
refused (:class:`~shadowguard.ShadowSideEffectBlocked`). The integration in
``shadowguard.integrations.grpc`` turns a :class:`GrpcReply` into grpc's own objects.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from shadowguard._outbound.rules import OTLP_ENDPOINT_VARS, exporting_telemetry, marker
from shadowguard._outbound.ruleset import rule_lists, stub_answer, stub_reply, telemetry_flag
from shadowguard._outbound.stubs import STUB_HEADER
from shadowguard._outbound.urls import glob
from shadowguard.contract import Kind, refuse
from shadowguard.errors import ConfigError

__all__ = [
    "OTLP_METHODS",
    "STATUS_CODES",
    "STUB_METADATA",
    "GrpcAllow",
    "GrpcDecision",
    "GrpcReply",
    "GrpcRules",
    "GrpcStub",
    "marked_metadata",
    "redact_target",
]

#: The canonical gRPC status code names a stub may answer with.
STATUS_CODES: Final = frozenset(
    {
        *("OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED"),
        *("NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED"),
        *("FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL"),
        *("UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"),
    }
)
_OPERATION: Final = "call"
# A protobuf full name (package.Service) and a method name: identifiers, nothing else.
_SERVICE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_METHOD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_USERINFO = re.compile(r"(?<=//)[^/@]*@")
#: The methods the OpenTelemetry OTLP/gRPC exporters call.
OTLP_METHODS: Final = frozenset(
    f"/opentelemetry.proto.collector.{signal}.v1.{service}Service/Export"
    for signal, service in (("trace", "Trace"), ("metrics", "Metrics"), ("logs", "Logs"))
)


def _full_method(value: object, what: str) -> str:
    """``value`` checked to be ``/package.Service/Method``; the way out in the error."""
    if isinstance(value, str):
        service, _, method = value.removeprefix("/").partition("/")
        if value.startswith("/") and _SERVICE.fullmatch(service) and _METHOD.fullmatch(method):
            return value
    raise ConfigError(
        f"{what} method {value!r} is not valid: give a full gRPC method name, "
        "'/package.Service/Method' (compared exactly; no wildcards)"
    )


def redact_target(target: str) -> str:
    """A channel target without userinfo (``dns://user:pw@resolver/host`` -> ``dns://***@...``)."""
    return _USERINFO.sub("***@", target)


@dataclass(frozen=True)
class GrpcAllow:
    """Let shadow calls of the named methods really go out (with the marker metadata).

    ``methods``: full method names (``"/shop.Orders/Get"``), or method names of
    ``service`` (``service="shop.Orders", methods=["Get", "List"]``), matched exactly.
    ``target``: the channel target the call must be made on (``"orders.internal:443"``,
    ``*`` matching any run of characters), or None for any. Name only methods that
    change nothing: gRPC cannot tell a read from a write. The marker carries the marker
    secret only with ``forward_secret=True``; otherwise it says ``"1"``.
    """

    methods: str | Iterable[str]
    service: str | None = None
    target: str | None = None
    forward_secret: bool = False
    _names: frozenset[str] = field(init=False, repr=False, compare=False)
    _target_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [self.methods] if isinstance(self.methods, str) else list(self.methods)
        if not names:
            raise ConfigError("a gRPC allow rule needs methods=: an empty rule would allow none")
        if self.service is not None:
            if not isinstance(self.service, str) or not _SERVICE.fullmatch(self.service):
                raise ConfigError(
                    f"gRPC allow service={self.service!r} is not valid: give a full service "
                    "name, 'package.Service'"
                )
            names = [f"/{self.service}/{name}" if isinstance(name, str) else name for name in names]
        full = frozenset(_full_method(name, "gRPC allow") for name in names)
        if not isinstance(self.forward_secret, bool):
            raise ConfigError(
                f"gRPC allow forward_secret={self.forward_secret!r} is not valid: accepted "
                "values are True or False"
            )
        if self.target is not None and (not isinstance(self.target, str) or not self.target):
            raise ConfigError(f"gRPC allow target={self.target!r} is not valid: give a target")
        target_re = glob(self.target) if self.target is not None else None
        object.__setattr__(self, "_names", full)
        object.__setattr__(self, "_target_re", target_re)

    def matches(self, target: str, method: str) -> bool:
        if method not in self._names:
            return False
        return self._target_re is None or self._target_re.fullmatch(target) is not None


@dataclass(frozen=True)
class GrpcReply:
    """What a stub answers: ``response`` (unary) or ``responses`` (a stream), or an error
    status (``code`` other than ``"OK"``, with ``details``)."""

    response: Any = None
    responses: Sequence[Any] | None = None
    code: str = "OK"
    details: str = ""


@dataclass(frozen=True)
class GrpcStub:
    """Answer shadow calls of ``method`` (a full method name) without contacting the server.

    The answer is returned as the call's result, not passed through the response
    deserializer: give the message object the application expects (a protobuf message,
    or bytes with bytes deserializers). ``response`` answers a unary-response method,
    ``responses`` (a sequence) a server-streaming one; ``code`` (a status code name or
    ``grpc.StatusCode``) other than ``"OK"`` makes the call fail with that status and
    ``details``. Or ``respond(request) -> GrpcReply`` builds the answer per call (for a
    client-streaming method it gets the request iterator).
    """

    method: str
    response: Any = None
    responses: Sequence[Any] | None = None
    code: Any = "OK"
    details: str = ""
    respond: Callable[[Any], GrpcReply] | None = None
    _reply: GrpcReply | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _full_method(self.method, "gRPC stub")
        code = getattr(self.code, "name", self.code)
        if code not in STATUS_CODES:
            raise ConfigError(
                f"gRPC stub code={self.code!r} is not valid: give a status code name such as "
                "'OK' or 'NOT_FOUND', or a grpc.StatusCode"
            )
        if isinstance(self.responses, (str, bytes)):
            raise ConfigError("gRPC stub responses= takes a sequence of messages")
        if self.respond is not None and not callable(self.respond):
            raise ConfigError(f"gRPC stub respond={self.respond!r} is not valid: give a callable")
        reply = None
        if self.respond is None:
            responses = None if self.responses is None else tuple(self.responses)
            reply = GrpcReply(self.response, responses, code, str(self.details))
        object.__setattr__(self, "_reply", reply)

    def reply(self, request: Any) -> GrpcReply:
        must = "a gRPC stub's respond() must return GrpcReply"
        return stub_reply(self._reply, self.respond, request, GrpcReply, must)


@dataclass(frozen=True)
class GrpcDecision:
    """``allowed`` (send it, marked), or the stub that answers it (None: refuse)."""

    allowed: bool
    stub: GrpcStub | None = None
    forward_secret: bool = False


class GrpcRules:
    """Allow and stub rules for gRPC calls, validated once.

    The first stub naming the method wins, then allow rules; every other shadow call is
    refused. A method name that is not text (undecodable bytes) matches nothing. With
    ``telemetry_exports`` (the default), an OTLP export (one of :data:`OTLP_METHODS`) made
    under OpenTelemetry's suppress-instrumentation key, as the SDK's exporters make them,
    goes out when its channel target is the host and port of a configured
    ``OTEL_EXPORTER_OTLP_*ENDPOINT``, so a shadow process keeps its telemetry.
    """

    def __init__(
        self,
        allow: Iterable[GrpcAllow | str] = (),
        stubs: Iterable[GrpcStub] = (),
        *,
        telemetry_exports: bool = True,
    ) -> None:
        self.telemetry_exports = telemetry_flag(telemetry_exports)
        self.allow, self.stubs = rule_lists(
            allow, stubs, GrpcAllow, GrpcStub, GrpcAllow, "GrpcAllow rules or full method names"
        )

    def decide(self, target: str, method: str) -> GrpcDecision:
        """Should this shadow call go out, or which stub answers it?"""
        if (
            self.telemetry_exports
            and method in OTLP_METHODS
            and exporting_telemetry()
            and _at_otlp_endpoint(target)
        ):
            return GrpcDecision(True)
        for stub in self.stubs:
            if stub.method == method:
                return GrpcDecision(False, stub)
        for rule in self.allow:
            if rule.matches(target, method):
                return GrpcDecision(True, forward_secret=rule.forward_secret)
        return GrpcDecision(False)

    def answer(
        self, decision: GrpcDecision, target: str, method: str, shape: str, request: Any
    ) -> GrpcReply:
        """Record the stub and build its reply, or refuse the call (recorded)."""
        where = f"{redact_target(target)}{method}"
        detail: dict[str, Any] = {"method": method, "call": shape}
        stub = decision.stub
        if stub is None:
            raise refuse(
                Kind.GRPC_CALL,
                where,
                _OPERATION,
                f"gRPC call {method} on {redact_target(target)} in shadow traffic "
                "(no allow or stub rule names it)",
                remedy="Add a GrpcStub rule for it, or a GrpcAllow rule if the method changes "
                "nothing (shadowguard.install('grpc', allow=[...], stubs=[...]))",
                detail=detail,
            )
        detail["rule"] = stub.method
        return stub_answer(
            Kind.GRPC_CALL,
            where,
            _OPERATION,
            detail,
            lambda: stub.reply(request),
            lambda reply: ("code", reply.code),
        )


def _at_otlp_endpoint(target: str) -> bool:
    """Is ``target`` the ``host:port`` of a configured OTLP endpoint (as the exporters dial it)?"""
    for name in OTLP_ENDPOINT_VARS:
        value = os.environ.get(name, "").strip()
        if not value:
            continue
        netloc = urlsplit(value).netloc if "://" in value else value.split("/", 1)[0]
        if netloc and target.lower() == netloc.lower():
            return True
    return False


def marked_metadata(
    metadata: Iterable[tuple[str, Any]] | None, forward_secret: bool = False
) -> Any:
    """``metadata`` with the shadow marker (replacing any entry of that key), or as it was
    when the marker is disabled."""
    header = marker(forward_secret)
    if header is None:
        return metadata
    key = header[0].lower()
    kept = tuple((k, v) for k, v in (metadata or ()) if str(k).lower() != key)
    return (*kept, (key, header[1]))


#: Trailing metadata of every stubbed call, so callers and logs can tell stubs apart.
STUB_METADATA: Final[Mapping[str, str]] = {STUB_HEADER: "1"}
