"""The precheck only ever sends requests on to detect(): it never decides "primary" wrongly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shadowguard import Settings, detect
from shadowguard.middleware._common import Precheck, environ_headers

NAMES = st.sampled_from(
    [
        "host",
        "Host",
        "HOST",
        ":authority",
        "x-shadow-request",
        "X-Shadow-Request",
        "baggage",
        "x-mirror",
        "user-agent",
        "x-forwarded-host",
    ]
)
VALUES = st.one_of(
    st.sampled_from(
        [
            "orders",
            "orders-shadow",
            "orders-SHADOW:80",
            "[::1]-shadow:8080",
            "a-shadow.",
            "shadow=true",
            "k=v,shadow=1;p",
            "1",
            "false",
            "",
            "orders-shadowx",
            "-shadow",
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
)
SETTINGS = st.builds(
    Settings,
    mode=st.sampled_from(["auto", "primary", "shadow"]),
    marker_header=st.sampled_from(["x-shadow-request", "x-mirror", ""]),
    baggage=st.booleans(),
    host_suffix=st.booleans(),
)


@given(SETTINGS, st.lists(st.tuples(NAMES, VALUES), max_size=6))
def test_asgi_precheck_never_hides_a_shadow_request(
    settings: Settings, headers: list[tuple[str, str]]
) -> None:
    raw = [(n.encode(), v.encode()) for n, v in headers]
    if not Precheck(settings).asgi(raw):
        assert not detect(raw, settings=settings).shadow


@given(SETTINGS, st.dictionaries(NAMES, VALUES, max_size=6))
def test_environ_precheck_never_hides_a_shadow_request(
    settings: Settings, headers: dict[str, str]
) -> None:
    environ = {"HTTP_" + n.upper().replace("-", "_"): v for n, v in headers.items() if n[0] != ":"}
    if not Precheck(settings).environ(environ):
        assert not detect(environ_headers(environ, settings), settings=settings).shadow


def test_precheck_lets_signals_through() -> None:
    check = Precheck(Settings())
    assert check.asgi([(b"Host", b"Orders-Shadow:8080")])
    assert check.asgi([(b"x-shadow-request", b"0")])
    assert not check.asgi([(b"host", b"orders"), (b"baggage", b"shadow=true")])
    assert Precheck(Settings(baggage=True)).asgi([(b"baggage", b"shadow=true")])
    assert Precheck(Settings(mode="shadow")).asgi([])
    assert check.asgi([("host", "x-shadow")])  # type: ignore[list-item]  # str: detect decides
    assert check.environ({"HTTP_HOST": "api-shadow"})
    assert not check.environ({"HTTP_HOST": "api"})
