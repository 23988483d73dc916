"""Detection: the -shadow host suffix, the marker header, baggage, SHADOW_MODE precedence."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowguard import Settings, detect, host_is_shadow

label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
hostname = st.lists(label, min_size=1, max_size=4).map(".".join)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.sampled_from(["[::1]", "[fe80::1]", "[2001:db8::8a2e:370:7334]", "[::ffff:10.0.0.1]"])
host = st.one_of(hostname, ipv4, ipv6)
port = st.one_of(st.none(), st.integers(1, 65535).map(str))


def envoy_shadow_host(h: str, p: str | None) -> str:
    """What Envoy's mirror does to Host: the suffix goes before the port."""
    return f"{h}-shadow" + (f":{p}" if p else "")


def authority(h: str, p: str | None) -> str:
    return h + (f":{p}" if p else "")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("api", False),
        ("api-shadow", True),
        ("api:8080", False),
        ("api-shadow:8080", True),
        ("127.0.0.1:10000", False),
        ("127.0.0.1-shadow:10000", True),
        ("[::1]:8080", False),
        ("[::1]-shadow:8080", True),
        ("[::1]-shadow", True),
        ("API-SHADOW:8080", True),
        ("Api-Shadow", True),
        ("api-shadow.", True),
        ("api.example.com.-shadow", True),
        ("api-shadow.:443", True),
        ("api:8080-shadow", False),  # suffix after the port is not what Envoy sends
        ("-shadow", False),
        ("-shadow:80", False),
        ("api-shadow:", False),
        ("api-shadow:80:80", False),
        ("api-shadow:http", False),
        ("api-shadow:123456", False),
        ("api shadow", False),
        ("api-shadowx", False),
        ("api_shadow", False),
        ("[::1-shadow:8080", False),
        ("::1-shadow", False),
        ("ａｐｉ-shadow", False),
        ("", False),
        ("   ", False),
    ],
)
def test_host_is_shadow_table(value: str, expected: bool) -> None:
    assert host_is_shadow(value) is expected


@given(host, port)
def test_envoy_suffix_is_always_detected(h: str, p: str | None) -> None:
    assert host_is_shadow(envoy_shadow_host(h, p))
    assert host_is_shadow(envoy_shadow_host(h, p).upper())
    assert host_is_shadow(envoy_shadow_host(h + "." if not h.startswith("[") else h, p))


@given(host, port)
def test_host_without_suffix_is_primary(h: str, p: str | None) -> None:
    if h.endswith("-shadow"):
        return
    assert not host_is_shadow(authority(h, p))


@given(st.text(max_size=60))
def test_host_is_shadow_never_raises(value: str) -> None:
    assert host_is_shadow(value) in (True, False)


@given(st.binary(max_size=40))
def test_detect_never_raises_on_garbage_bytes(value: bytes) -> None:
    result = detect([(b"host", value), (b"x-shadow-request", value)], settings=Settings())
    assert result.shadow in (True, False)


def test_allowlist_restricts_shadow_hosts() -> None:
    assert host_is_shadow("orders-shadow:8080", allowed={"orders-shadow"})
    assert host_is_shadow("ORDERS-SHADOW.", allowed={"orders-shadow"})
    assert not host_is_shadow("billing-shadow:8080", allowed={"orders-shadow"})
    s = Settings(shadow_hosts=frozenset({"Orders-Shadow."}))
    assert detect({"host": "orders-shadow:80"}, settings=s).shadow
    assert not detect({"host": "other-shadow:80"}, settings=s).shadow


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "api-shadow:8080"},
        {b"host": b"api-shadow:8080"},
        [("Host", "api-shadow")],
        [(b":authority", b"api-shadow:443")],
        [("host", "api"), ("host", "api-shadow")],
    ],
)
def test_detect_host_forms(headers: object) -> None:
    result = detect(headers, settings=Settings())  # type: ignore[arg-type]
    assert result.shadow
    assert result.signal == "host"


def test_x_forwarded_host_is_never_consulted() -> None:
    result = detect({"host": "api", "x-forwarded-host": "api-shadow"}, settings=Settings())
    assert not result.shadow
    assert result.signal is None


def test_host_suffix_can_be_disabled() -> None:
    assert not detect({"host": "api-shadow"}, settings=Settings(host_suffix=False)).shadow


def test_marker_header_default_and_explicit_false() -> None:
    s = Settings()
    assert detect({"X-Shadow-Request": "true"}, settings=s).signal == "marker"
    assert detect({"x-shadow-request": "1"}, settings=s).shadow
    # An unexpected value still counts: a mirror that sets the header must not leak.
    assert detect({"x-shadow-request": "mirror"}, settings=s).shadow
    assert not detect({"x-shadow-request": "false"}, settings=s).shadow
    assert not detect({"x-shadow-request": " OFF "}, settings=s).shadow


def test_marker_header_custom_name_and_disabled() -> None:
    s = Settings(marker_header="X-Mirror")
    assert detect({"x-mirror": "yes"}, settings=s).shadow
    assert not detect({"x-shadow-request": "true"}, settings=s).shadow
    assert not detect({"x-shadow-request": "true"}, settings=Settings(marker_header="")).shadow


def test_marker_secret_must_match() -> None:
    s = Settings(marker_secret="s3cret")
    ok = detect({"x-shadow-request": "s3cret"}, settings=s)
    assert ok.shadow
    assert ok.signal == "marker"
    forged = detect({"x-shadow-request": "true"}, settings=s)
    assert not forged.shadow
    assert forged.ignored == ("marker",)


def test_marker_beats_host() -> None:
    result = detect({"host": "api-shadow", "x-shadow-request": "true"}, settings=Settings())
    assert result.signal == "marker"


def test_baggage_only_when_enabled() -> None:
    headers = {"baggage": "userId=alice, shadow=true;ttl=3,other=1"}
    assert not detect(headers, settings=Settings()).shadow
    result = detect(headers, settings=Settings(baggage=True))
    assert result.shadow
    assert result.signal == "baggage"
    assert not detect({"baggage": "shadow=false"}, settings=Settings(baggage=True)).shadow
    assert not detect({"baggage": "notshadow=true"}, settings=Settings(baggage=True)).shadow
    assert detect({"baggage": "shadow=%74rue"}, settings=Settings(baggage=True)).shadow


def test_shadow_mode_true_makes_everything_shadow() -> None:
    result = detect({"host": "api"}, settings=Settings(mode="shadow"))
    assert result.shadow
    assert result.signal == "env"


def test_shadow_mode_false_ignores_and_counts_signals(metric_reader) -> None:
    s = Settings(mode="primary", baggage=True)
    result = detect(
        {"host": "api-shadow", "x-shadow-request": "true", "baggage": "shadow=true"}, settings=s
    )
    assert not result.shadow
    assert result.signal == "env"
    assert set(result.ignored) == {"marker", "host", "baggage"}
    data = metric_reader.get_metrics_data()
    points = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "shadowguard.signals_ignored"
        for p in m.data.data_points
    ]
    assert {p.attributes["signal"] for p in points} >= {"marker", "host", "baggage"}


@given(
    mode=st.sampled_from(["auto", "shadow", "primary"]),
    marker=st.sampled_from([None, "true", "false", "wrong"]),
    secret=st.sampled_from([None, "right"]),
    shadow_host=st.booleans(),
    baggage_on=st.booleans(),
    baggage_shadow=st.booleans(),
)
def test_detect_precedence(
    mode: str,
    marker: str | None,
    secret: str | None,
    shadow_host: bool,
    baggage_on: bool,
    baggage_shadow: bool,
) -> None:
    """detect() matches the documented precedence for every combination of signals."""
    settings = Settings(mode=mode, marker_secret=secret, baggage=baggage_on)  # type: ignore[arg-type]
    headers = [("host", "api-shadow:80" if shadow_host else "api:80")]
    if marker is not None:
        headers.append(("x-shadow-request", "right" if marker == "true" and secret else marker))
    if baggage_shadow:
        headers.append(("baggage", "shadow=true"))
    result = detect(headers, settings=settings)

    marker_trusted = marker == "true" or (marker == "wrong" and secret is None)
    if mode == "shadow":
        expected, signal = True, "env"
    elif mode == "primary":
        expected, signal = False, "env"
    elif marker_trusted:
        expected, signal = True, "marker"
    elif shadow_host:
        expected, signal = True, "host"
    elif baggage_on and baggage_shadow:
        expected, signal = True, "baggage"
    else:
        expected, signal = False, None
    assert result.shadow is expected
    assert result.signal == signal
