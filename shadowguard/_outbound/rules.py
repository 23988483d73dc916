"""The outbound rules: which shadow requests go out (Allow), what answers the rest (Stub).

A shadow request leaves the process only if an :class:`Allow` rule names it (safe reads
only); every other request is answered by a :class:`Stub` rule or the default stub, or
refused with ``default=BLOCK``. :meth:`Rules.answer` records what happened, once for every
client.
"""

from __future__ import annotations

import json as _json
import os
import re
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from opentelemetry import context as otel_context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

from shadowguard._outbound.ruleset import rule_lists, stub_answer, stub_reply, telemetry_flag
from shadowguard._outbound.stubs import STUB_HEADER
from shadowguard._outbound.urls import (
    UrlMatcher,
    canonical_url,
    glob,
    host_pattern,
    normalize_url,
    redact_url,
    url_pattern,
)
from shadowguard.contract import Kind, refuse, settings_or_defaults
from shadowguard.errors import ConfigError

__all__ = [
    "BLOCK",
    "DEFAULT_STUB",
    "OTLP_ENDPOINT_VARS",
    "SAFE_METHODS",
    "STUB_HEADER",
    "Allow",
    "Decision",
    "Default",
    "OutboundRequest",
    "Reply",
    "Rules",
    "Stub",
    "add_marker",
    "exporting_telemetry",
    "guard_rules",
    "marker",
]

#: The only methods an allow rule may name: reads that change nothing by HTTP's own rules.
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
#: ``default=BLOCK`` makes an unmatched shadow request raise ShadowSideEffectBlocked.
BLOCK: Final = "block"
#: ``detail["operation"]`` of every HTTP record: the request was (not) sent.
_OPERATION: Final = "send"

_UNSET: Any = object()
#: Where the OpenTelemetry OTLP exporters send; the only destinations of telemetry_exports.
OTLP_ENDPOINT_VARS: Final = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
)


def _methods(value: str | Iterable[str] | None, what: str) -> frozenset[str] | None:
    if value is None or value == "*":
        return None
    names = [value] if isinstance(value, str) else list(value)
    if not names or not all(isinstance(m, str) and m.strip() for m in names):
        raise ConfigError(f"{what} methods={value!r} is not valid: give HTTP method names")
    return frozenset(m.strip().upper() for m in names)


@dataclass(frozen=True)
class OutboundRequest:
    """What a stub callable sees of the request it answers."""

    method: str
    url: str
    headers: Mapping[str, str]
    content: bytes | None = None
    client: str = ""

    def json(self) -> Any:
        """The request body parsed as JSON."""
        return _json.loads(self.content or b"null")


@dataclass(frozen=True)
class Reply:
    """A stub response: status, headers and one of ``json``, ``text`` or ``content``."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = _UNSET
    text: str | None = None
    content: bytes | None = None

    def __post_init__(self) -> None:
        given = [self.json is not _UNSET, self.text is not None, self.content is not None]
        if sum(given) > 1:
            raise ConfigError("a stub reply takes one of json=, text= or content=, not several")
        if not isinstance(self.status, int) or not 100 <= self.status <= 599:
            raise ConfigError(f"stub status={self.status!r} is not valid: give 100 to 599")

    def render(self, method: str = "GET") -> tuple[int, list[tuple[str, str]], bytes]:
        """``(status, headers, body)``: content type and length filled in, the stub header
        added; the body left out for HEAD, as a server would."""
        headers = {k.lower(): str(v) for k, v in self.headers.items()}
        if self.json is not _UNSET:
            body = _json.dumps(self.json).encode()
            headers.setdefault("content-type", "application/json")
        elif self.text is not None:
            body = self.text.encode()
            headers.setdefault("content-type", "text/plain; charset=utf-8")
        else:
            body = self.content or b""
        headers.setdefault("content-length", str(len(body)))
        headers[STUB_HEADER] = "1"
        return self.status, list(headers.items()), b"" if method.upper() == "HEAD" else body


Respond = Callable[[OutboundRequest], Reply]


@dataclass(frozen=True)
class Allow:
    """Let matching shadow reads really go out (with the shadow marker header).

    Give ``host`` (``"api.example.com"``, ``"*.example.com"``) and/or ``url`` (a pattern
    with scheme, ``*`` matching anything, compared without query; or a compiled regex
    matched in full against the URL with its query). ``methods`` may only name GET, HEAD
    and OPTIONS. The marker header carries the marker secret only with
    ``forward_secret=True`` (for your own services that require it); to every other host
    it says ``"1"``, so a third party never learns the secret.
    """

    host: str | None = None
    url: str | re.Pattern[str] | None = None
    methods: str | Iterable[str] = ("GET", "HEAD", "OPTIONS")
    forward_secret: bool = False
    _host_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _url_re: UrlMatcher | None = field(init=False, repr=False, compare=False)
    _methods: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.host is None and self.url is None:
            raise ConfigError("an allow rule needs host= or url=; an empty rule would allow all")
        if not isinstance(self.forward_secret, bool):
            raise ConfigError(
                f"allow forward_secret={self.forward_secret!r} is not valid: accepted values "
                "are True or False"
            )
        methods = _methods(self.methods, "allow")
        if methods is None or not methods <= SAFE_METHODS:
            raise ConfigError(
                f"allow methods={self.methods!r} is not valid: accepted values are GET, HEAD "
                "and OPTIONS (other methods may change state; answer them with a Stub)"
            )
        host_re = glob(host_pattern(self.host, "allow")) if self.host is not None else None
        object.__setattr__(self, "_host_re", host_re)
        object.__setattr__(self, "_url_re", url_pattern(self.url, "allow"))
        object.__setattr__(self, "_methods", methods)

    def matches(self, method: str, host: str, url: str, query: str) -> bool:
        if method not in self._methods or not url:
            return False
        if self._host_re is not None and not self._host_re.fullmatch(host):
            return False
        if self._url_re is None:
            return True
        # Out only if the path matches as sent and as a server that resolves it reads it.
        canonical = canonical_url(url)
        if canonical is None or not self._url_re(url, query):
            return False
        return canonical == url or self._url_re(canonical, query)


@dataclass(frozen=True)
class Stub:
    """Answer matching shadow requests with a reply instead of sending them.

    ``method`` is a name, a collection of names, or ``"*"`` (any); ``url`` a pattern as
    for :class:`Allow` (``None``: any URL). The reply is given inline (``status``,
    ``headers``, ``json``/``text``/``content``) or built by ``respond(request) -> Reply``.
    """

    method: str | Iterable[str] = "*"
    url: str | re.Pattern[str] | None = None
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = _UNSET
    text: str | None = None
    content: bytes | None = None
    respond: Respond | None = None
    _reply: Reply | None = field(init=False, repr=False, compare=False)
    _url_re: UrlMatcher | None = field(init=False, repr=False, compare=False)
    _methods: frozenset[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_methods", _methods(self.method, "stub"))
        object.__setattr__(self, "_url_re", url_pattern(self.url, "stub"))
        if self.respond is not None:
            if not callable(self.respond):
                raise ConfigError(f"stub respond={self.respond!r} is not valid: give a callable")
            object.__setattr__(self, "_reply", None)
        else:
            reply = Reply(self.status, self.headers, self.json, self.text, self.content)
            object.__setattr__(self, "_reply", reply)

    def matches(self, method: str, url: str, query: str) -> bool:
        if self._methods is not None and method not in self._methods:
            return False
        if self._url_re is None or self._url_re(url, query):
            return True
        # Stubbed if the path matches either as sent or as a server may resolve it.
        canonical = canonical_url(url)
        return canonical is not None and canonical != url and self._url_re(canonical, query)

    def reply(self, request: OutboundRequest) -> Reply:
        must = "a stub's respond() must return shadowguard Reply"
        return stub_reply(self._reply, self.respond, request, Reply, must)

    def describe(self) -> str:
        methods = "*" if self._methods is None else ",".join(sorted(self._methods))
        pattern = self.url.pattern if isinstance(self.url, re.Pattern) else self.url
        return f"{methods} {pattern or '*'}"


#: What answers a shadow request no rule names: 200, ``{}`` as JSON, the stub header.
DEFAULT_STUB: Final = Stub(json={})

Default = Stub | Reply | Literal["block"]


@dataclass(frozen=True)
class Decision:
    """``allowed`` (send it, marked) or the stub that answers it (``None`` with BLOCK);
    ``forward_secret``: the marker may carry the secret (an allow rule said so)."""

    allowed: bool
    stub: Stub | None = None
    forward_secret: bool = False


class Rules:
    """Allow rules, stub rules and the default, validated once.

    Order: the first matching stub rule wins (even for a read an allow rule names), then
    allow rules, then the default. A request with an ``Upgrade`` header (WebSocket, h2c)
    is never allowed: it would open a two-way channel, not a read. With
    ``telemetry_exports`` (the default), a request made under OpenTelemetry's
    suppress-instrumentation context key (the SDK's exporters set it) goes out unjudged
    when its URL is at an OTLP endpoint configured by ``OTEL_EXPORTER_OTLP_ENDPOINT`` or a
    per-signal ``OTEL_EXPORTER_OTLP_*_ENDPOINT``, so a shadow process keeps its traces and
    metrics; under that key any other URL is judged as usual.
    """

    def __init__(
        self,
        allow: Iterable[Allow | str] = (),
        stubs: Iterable[Stub] = (),
        default: Default = DEFAULT_STUB,
        *,
        telemetry_exports: bool = True,
    ) -> None:
        self.telemetry_exports = telemetry_flag(telemetry_exports)
        self.allow, self.stubs = rule_lists(
            allow, stubs, Allow, Stub, _allow_from_text, "Allow rules or host/URL patterns"
        )
        if isinstance(default, Reply):
            default = Stub(
                status=default.status,
                headers=default.headers,
                json=default.json,
                text=default.text,
                content=default.content,
            )
        if default != BLOCK and not isinstance(default, Stub):
            raise ConfigError(
                f"default={default!r} is not valid: accepted values are a Stub, a Reply or "
                f"{BLOCK!r} (raise ShadowSideEffectBlocked)"
            )
        self.default: Stub | None = default if isinstance(default, Stub) else None

    def decide(self, method: str, url: str, headers: Mapping[str, str] | None = None) -> Decision:
        """Should this shadow request go out, or which stub answers it?"""
        method = method.upper()
        host, base, query = normalize_url(url)
        if self.telemetry_exports and exporting_telemetry() and _at_otlp_endpoint(base):
            return Decision(True)
        for stub in self.stubs:
            if stub.matches(method, base, query):
                return Decision(False, stub)
        upgrade = headers is not None and any(k.lower() == "upgrade" for k in headers)
        if not upgrade:
            for rule in self.allow:
                if rule.matches(method, host, base, query):
                    return Decision(True, forward_secret=rule.forward_secret)
        return Decision(False, self.default)

    def answer(self, decision: Decision, request: OutboundRequest) -> Reply:
        """Record the stub and build its reply, or refuse the request (recorded) with BLOCK."""
        target = f"{request.method.upper()} {redact_url(request.url)}"
        detail: dict[str, Any] = {"client": request.client, "method": request.method.upper()}
        stub = decision.stub
        if stub is None:
            raise refuse(
                Kind.HTTP_REQUEST,
                target,
                _OPERATION,
                f"{target} (no allow or stub rule matches it)",
                remedy="Add a Stub rule for it, or an Allow rule if it is a safe read "
                "(install(allow=[...], stubs=[...]) or guard(client, ...))",
                detail=detail,
            )
        detail["rule"] = "default" if stub is self.default else stub.describe()
        return stub_answer(
            Kind.HTTP_REQUEST,
            target,
            _OPERATION,
            detail,
            lambda: stub.reply(request),
            lambda reply: ("status", reply.status),
        )


def guard_rules(
    allow: Iterable[Allow | str] | None, stubs: Iterable[Stub] | None, default: Default | None
) -> Rules | None:
    """The rules of one ``guard(client, ...)`` call, or None when it names none (the
    client then follows the rules given to ``install()``)."""
    if allow is None and stubs is None and default is None:
        return None
    return Rules(allow or (), stubs or (), DEFAULT_STUB if default is None else default)


def exporting_telemetry() -> bool:
    try:
        return bool(otel_context.get_value(_SUPPRESS_INSTRUMENTATION_KEY))
    except Exception:  # telemetry fails open; the request is then judged as any other
        return False


def _at_otlp_endpoint(base: str) -> bool:
    """Is ``base`` (a normalized URL) at or under a configured OTLP endpoint?

    Only a path without dot segments, ``%2e``, empty segments or encoded separators
    qualifies: ``/v1/traces/../../admin`` is not under ``/v1/traces`` for a server that
    resolves it (exporters never send such paths).
    """
    if not base or canonical_url(base) != base:
        return False
    for name in OTLP_ENDPOINT_VARS:
        value = os.environ.get(name, "").strip()
        endpoint = normalize_url(value)[1] if value else ""
        # Paths compare on segment boundaries: /v1/traces does not cover /v1/tracesX.
        if endpoint and (base == endpoint or base.startswith(endpoint.rstrip("/") + "/")):
            return True
    return False


def _allow_from_text(rule: str) -> Allow:
    return Allow(url=rule) if "://" in rule else Allow(host=rule)


def marker(forward_secret: bool = False) -> tuple[str, str] | None:
    """The ``(name, value)`` header marking an allowed shadow request, or None if disabled.

    The value is the marker secret when one is configured and ``forward_secret`` is true
    (an :class:`Allow` rule with ``forward_secret=True`` let the request out), else
    ``"1"``: whoever holds the secret can mark real requests to our services as shadow.
    """
    settings = settings_or_defaults()
    if not settings.marker_header:
        return None
    secret = settings.marker_secret if forward_secret else None
    return settings.marker_header, secret or "1"


def add_marker(headers: MutableMapping[str, str], forward_secret: bool = False) -> None:
    """Mark an allowed shadow request's ``headers`` with :func:`marker` (if enabled)."""
    header = marker(forward_secret)
    if header is not None:
        headers[header[0]] = header[1]
