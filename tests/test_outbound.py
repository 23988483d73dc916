"""Outbound HTTP rules: matching, precedence, validation and redaction of recorded URLs."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

import shadowguard
from shadowguard import ConfigError, ShadowSideEffectBlocked
from shadowguard._config import reset
from shadowguard._outbound import (
    BLOCK,
    OTLP_ENDPOINT_VARS,
    STUB_HEADER,
    Allow,
    OutboundRequest,
    Reply,
    Rules,
    Stub,
    canonical_url,
    marker,
    normalize_url,
    redact_url,
    url_of,
)
from tests.integrations._http import suppress_instrumentation

_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)
_hosts = st.lists(_label, min_size=1, max_size=4).map(".".join)
# Dot segments ("." and "..") are resolved before matching: tested on their own below.
_segments = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789-_.~", min_size=1, max_size=8).filter(
        lambda segment: segment not in (".", "..")
    ),
    max_size=4,
)
_paths = _segments.map(lambda parts: "/" + "/".join(parts))
_query_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10)
_query_values = st.text(min_size=1, max_size=20).map(lambda v: "SECRET" + v)


def _only_otlp_endpoints(monkeypatch: pytest.MonkeyPatch, **endpoints: str) -> None:
    """Set these OTLP endpoint variables and unset the others."""
    for name in OTLP_ENDPOINT_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, url in endpoints.items():
        monkeypatch.setenv(name, url)


@given(
    host=_hosts,
    path=_paths,
    query=st.dictionaries(_query_names, _query_values, min_size=1, max_size=5),
)
def test_redaction_keeps_names_and_drops_every_query_value(
    host: str, path: str, query: dict[str, str]
) -> None:
    url = f"https://USER:PA55WORD@{host}{path}?{urlencode(query)}#FRAGMENT"
    target = redact_url(url)
    for secret in ("SECRET", "USER", "PA55WORD", "@", "FRAGMENT"):
        assert secret not in target
    assert target.startswith(f"https://{host}{path or '/'}?")
    assert [pair.split("=")[0] for pair in target.split("?", 1)[1].split("&")] == list(query)
    assert all(pair.endswith("=***") for pair in target.split("?", 1)[1].split("&"))


@given(host=_hosts, path=_paths)
def test_a_literal_url_pattern_matches_exactly_that_url(host: str, path: str) -> None:
    rule = Allow(url=f"https://{host}{path}")
    h, base, query = normalize_url(f"HTTPS://{host.upper()}:443{path}?q=1")
    assert rule.matches("GET", h, base, query)
    h, base, query = normalize_url(f"https://{host}{path}x")
    assert not rule.matches("GET", h, base, query)
    h, base, query = normalize_url(f"https://{host}.evil.test{path}")
    assert not rule.matches("GET", h, base, query)
    h, base, query = normalize_url(f"http://{host}{path}")
    assert not rule.matches("GET", h, base, query)


@given(host=_hosts, prefix=_paths, rest=_paths)
def test_a_star_matches_any_continuation(host: str, prefix: str, rest: str) -> None:
    rule = Allow(url=f"https://{host}{prefix}*")
    assert rule.matches("GET", *normalize_url(f"https://{host}{prefix}{rest}"))
    assert not rule.matches("GET", *normalize_url(f"https://x{host}{prefix}{rest}"))


@given(sub=_hosts, other=_hosts)
def test_host_patterns(sub: str, other: str) -> None:
    rule = Allow(host="*.partner.test")
    assert rule.matches("GET", *normalize_url(f"https://{sub}.partner.test/x"))
    assert not rule.matches("GET", *normalize_url("https://partner.test/x"))
    assert not rule.matches("GET", *normalize_url(f"https://{sub}.partner.test.{other}/x"))
    exact = Allow(host="api.partner.test")
    assert exact.matches("HEAD", *normalize_url("http://API.partner.test:8080/x"))
    assert not exact.matches("GET", *normalize_url(f"http://api.partner.test.{other}/"))


def test_userinfo_or_path_cannot_fake_an_allowed_host() -> None:
    rules = Rules(allow=["https://api.partner.test/*", "https://*.cdn.test/*"])
    assert not rules.decide("GET", "https://api.partner.test@evil.test/x").allowed
    assert not rules.decide("GET", "https://api.partner.test.evil.test/x").allowed
    assert not rules.decide("GET", "https://evil.test/.cdn.test/x").allowed
    assert rules.decide("GET", "https://api.partner.test/x").allowed
    assert rules.decide("GET", "https://a.b.cdn.test/x/y").allowed


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "CONNECT", "TRACE"])
def test_allow_rules_only_name_safe_reads(method: str) -> None:
    with pytest.raises(ConfigError, match="GET, HEAD and OPTIONS"):
        Allow(host="api.partner.test", methods=[method])
    rules = Rules(allow=["api.partner.test"])
    assert not rules.decide(method, "https://api.partner.test/").allowed


def test_rule_validation_names_the_way_out() -> None:
    with pytest.raises(ConfigError, match="host= or url="):
        Allow()
    with pytest.raises(ConfigError, match="scheme"):
        Stub(url="/relative/*")
    with pytest.raises(ConfigError, match="one of json=, text= or content="):
        Stub(json={}, text="x")
    with pytest.raises(ConfigError, match="default="):
        Rules(default="ignore")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="lists of rules"):
        Rules(allow="api.partner.test")


def test_stub_rules_win_over_allow_rules_and_upgrades_are_never_allowed() -> None:
    stub = Stub(method="GET", url="https://api.partner.test/prices", json=[1])
    rules = Rules(allow=["api.partner.test"], stubs=[stub])
    assert rules.decide("GET", "https://api.partner.test/prices?x=1").stub is stub
    assert rules.decide("GET", "https://api.partner.test/other").allowed
    upgrade = rules.decide("GET", "https://api.partner.test/ws", {"Upgrade": "websocket"})
    assert not upgrade.allowed


def test_regex_patterns_see_the_query() -> None:
    rules = Rules(stubs=[Stub(url=re.compile(r"https://api\.test/search\?q=.*"), status=418)])
    assert rules.decide("POST", "https://api.test/search?q=x").stub is rules.stubs[0]
    assert rules.decide("POST", "https://api.test/search").stub is rules.default


def test_answer_records_the_suppression_and_block_raises() -> None:
    request = OutboundRequest("post", "https://pay.test/charge?key=sk_live", {}, b"{}", "x")
    rules = Rules(default=BLOCK)
    with shadowguard.shadow() as scope:
        decision = rules.decide("POST", request.url)
        with pytest.raises(ShadowSideEffectBlocked, match="Stub rule"):
            rules.answer(decision, request)
        reply = Rules().answer(Rules().decide("POST", request.url), request)
    assert reply.render()[0] == 200
    assert (STUB_HEADER, "1") in reply.render()[1]
    assert [s.target for s in scope.suppressed] == ["POST https://pay.test/charge?key=***"] * 2
    assert [s.detail["action"] for s in scope.suppressed] == ["blocked", "stubbed"]


def test_a_failing_respond_callable_is_recorded_with_its_error() -> None:
    def respond(request: OutboundRequest) -> Reply:
        raise ValueError(request.json()["bad"])

    rules = Rules(stubs=[Stub(respond=respond)])
    request = OutboundRequest("POST", "https://pay.test/", {}, b'{"bad": "input"}')
    with shadowguard.shadow() as scope, pytest.raises(ValueError, match="input"):
        rules.answer(rules.decide("POST", request.url), request)
    assert isinstance(scope.suppressed[0].error, ValueError)


def test_head_stubs_have_headers_but_no_body() -> None:
    status, headers, body = Reply(json={"a": 1}).render("HEAD")
    assert (status, body) == (200, b"")
    assert ("content-length", "8") in headers
    assert Reply(json={"a": 1}).render("GET")[2] == b'{"a": 1}'


@given(
    method=st.sampled_from(["GET", "HEAD", "POST", "get", "DELETE"]),
    url=st.one_of(st.text(max_size=60), st.builds("http://{}".format, st.text(max_size=40))),
)
def test_any_url_is_judged_without_error(method: str, url: str) -> None:
    """Garbage in a URL never breaks the request path, and never allows it by accident."""
    rules = Rules(allow=["api.partner.test", "https://cdn.test/*"], stubs=[Stub(url="http://x/*")])
    decision = rules.decide(method, url)
    redact_url(url)
    if decision.allowed:
        host = normalize_url(url)[0]
        assert host in ("api.partner.test", "cdn.test")


def test_exporter_exemption_covers_only_the_configured_otlp_endpoints(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under suppress-instrumentation, only OTLP endpoint URLs skip the rules."""
    _only_otlp_endpoints(
        monkeypatch,
        OTEL_EXPORTER_OTLP_ENDPOINT="http://Collector.test:4318",
        OTEL_EXPORTER_OTLP_LOGS_ENDPOINT="https://logs.test/ingest/logs",
    )
    rules = Rules()
    with suppress_instrumentation():
        assert rules.decide("POST", "http://collector.test:4318/v1/traces").allowed
        assert rules.decide("POST", "https://logs.test/ingest/logs").allowed
        assert rules.decide("POST", "https://logs.test/ingest/logs/x").allowed
        assert not rules.decide("POST", "https://logs.test/ingest/logsx").allowed
        assert not rules.decide("POST", "https://logs.test/other").allowed
        assert not rules.decide("POST", "http://collector.test:4319/v1/traces").allowed
        assert not rules.decide("POST", "https://payments.test/charge").allowed
        assert (
            not Rules(telemetry_exports=False).decide("POST", "http://collector.test:4318/").allowed
        )
    assert not rules.decide("POST", "http://collector.test:4318/v1/traces").allowed


def test_marker_secret_only_for_allow_rules_that_forward_it() -> None:
    rules = Rules(allow=[Allow(host="orders.internal", forward_secret=True), "api.partner.test"])
    assert rules.decide("GET", "https://orders.internal/o/1").forward_secret
    partner = rules.decide("GET", "https://api.partner.test/prices")
    assert partner.allowed
    assert not partner.forward_secret
    with pytest.raises(ConfigError, match="forward_secret"):
        Allow(host="x.test", forward_secret="yes")  # type: ignore[arg-type]
    try:
        shadowguard.configure(marker_secret="s3cret")
        assert marker() == ("x-shadow-request", "1")
        assert marker(forward_secret=True) == ("x-shadow-request", "s3cret")
    finally:
        reset()
    assert marker(forward_secret=True) == ("x-shadow-request", "1")


@pytest.mark.parametrize(
    "host",
    [
        "https://api.test",
        "api.test/v1",
        "api.test:8443/x",
        "api.test:8443",
        "",
        "   ",
        "api .test",
        ".api.test",
        "a..test",
        "user@api.test",
        "api.test?x=1",
        "[::1]:8080",
        "api\ttest",
        "bü*.test",
    ],
)
def test_a_host_rule_that_could_never_match_is_refused(host: str) -> None:
    """A scheme, port or path in host= (or an empty label) can never match a URL's host."""
    with pytest.raises(ConfigError, match="accepted forms"):
        Allow(host=host)
    with pytest.raises(ConfigError, match="accepted forms"):
        Rules(allow=[host] if "://" not in host else [Allow(host=host)])


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("API.Test.", "https://api.test./x"),
        (" api.test ", "https://API.TEST/x"),
        ("bücher.example", "https://xn--bcher-kva.example/"),
        ("bücher.example", "https://BÜCHER.example/"),
        ("xn--bcher-kva.example", "https://bücher.example/"),
        ("[::1]", "http://[0:0::1]:8080/"),
        ("::1", "http://[::1]/"),
        ("10.0.0.7", "http://10.0.0.7:81/"),
        ("*.cdn.test", "https://a.b.CDN.test/"),
    ],
)
def test_host_rules_match_as_urls_are_normalized(host: str, url: str) -> None:
    assert Allow(host=host).matches("GET", *normalize_url(url))


@pytest.mark.parametrize(
    "url",
    [
        "https://api.test/search?q=*",
        "https://api.test/x#frag",
        "https://user@api.test/*",
        "https://api.test/a/../b",
        "https://api.test/a/%2E/b",
        "https:///x",
        "https://api.test:port/x",
        "https://api .test/x",
        "https://api.test/a b",
        "https://.api.test/x",
    ],
)
def test_a_url_pattern_that_could_never_match_is_refused(url: str) -> None:
    """A query, fragment, userinfo, dot segment, bad port or space can never match a URL."""
    for rule in (Allow, Stub):
        with pytest.raises(ConfigError, match="is not valid"):
            rule(url=url)


def test_url_patterns_are_normalized_as_urls_are() -> None:
    rule = Allow(url="HTTPS://API.test.:443/v1/*")
    assert rule.matches("GET", *normalize_url("https://api.test/v1/x"))
    assert Allow(url="https://bücher.example/*").matches(
        "GET", *normalize_url("https://xn--bcher-kva.example/a")
    )


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("https://a.test/v1/traces/../../admin", "https://a.test/admin"),
        ("https://a.test/v1/%2e%2E/admin", "https://a.test/admin"),
        ("https://a.test//v1//x/", "https://a.test/v1/x/"),
        ("https://a.test/v1/./x/..", "https://a.test/v1/"),
        ("https://a.test/../..", "https://a.test/"),
        ("https://a.test/a/..%2fadmin", None),
        ("https://a.test/a\\..\\admin", None),
        ("https://a.test/a/b", "https://a.test/a/b"),
    ],
)
def test_canonical_url_reads_the_path_as_a_resolving_server(
    url: str, canonical: str | None
) -> None:
    assert canonical_url(normalize_url(url)[1]) == canonical


def test_an_allow_rule_holds_for_the_path_as_sent_and_as_resolved() -> None:
    rules = Rules(allow=["https://api.test/public/*"], stubs=[Stub(url="https://api.test/admin")])
    assert rules.decide("GET", "https://api.test/public/x").allowed
    assert rules.decide("GET", "https://api.test/public//x").allowed
    for path in ("../admin", "%2e%2e/admin", "..%2fadmin", "x/../../admin", "..\\admin"):
        assert not rules.decide("GET", f"https://api.test/public/{path}").allowed, path
    # A stub rule answers the path a server would resolve to, as well as the path as sent.
    assert rules.decide("GET", "https://api.test/public/../admin").stub is rules.stubs[0]


def test_the_otlp_exemption_needs_a_path_without_dot_segments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _only_otlp_endpoints(monkeypatch, OTEL_EXPORTER_OTLP_ENDPOINT="http://collector.test:4318")
    rules = Rules()
    with suppress_instrumentation():
        assert rules.decide("POST", "http://collector.test:4318/v1/traces").allowed
        for path in (
            "/v1/traces/../../admin",
            "/v1/traces/%2e%2e/%2e%2e/admin",
            "//admin",
            "/v1//traces",
            "/v1/traces%2f..%2f..%2fadmin",
            "/v1/./traces",
        ):
            assert not rules.decide("POST", f"http://collector.test:4318{path}").allowed, path


def _as_resolved(host: str) -> str | None:
    """``host`` as the socket resolves it (IDNA for a non-ASCII name), or None if it cannot."""
    try:
        name = host if host.isascii() else host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return name.lower().rstrip(".")


@given(
    host=st.one_of(
        st.text(min_size=1, max_size=24),
        st.sampled_from(["localhost@10.0.0.7", "10.0.0.7\\@localhost", "localhost:80", "a b"]),
    ),
    allowed=st.sampled_from(["localhost", "10.0.0.7", "api.partner.test"]),
)
def test_a_connection_host_is_never_judged_as_another(host: str, allowed: str) -> None:
    """http.client and aiohttp judge the host they connect to: written into a URL it
    keeps its meaning, so a rule for one host never matches a connection to another."""
    url = url_of("http", host, 8080, "/x")
    if Allow(host=allowed).matches("GET", *normalize_url(url)):
        assert _as_resolved(host) == allowed


@pytest.mark.parametrize(
    ("args", "url"),
    [
        (("http", "::1", 80, "/a?b=1"), "http://[::1]:80/a?b=1"),
        (("https", "api.test", 443, "*"), "https://api.test:443/*"),
        (("http", "proxy", 3128, "http://up.test/x"), "http://up.test/x"),
        (("http", "a@b", 80, "/"), "http://a%40b:80/"),
        (("ws", "bücher.example", None, "/feed"), "ws://xn--bcher-kva.example/feed"),
    ],
)
def test_url_of_writes_where_a_request_goes(
    args: tuple[str, str, int | None, str], url: str
) -> None:
    assert url_of(*args) == url
