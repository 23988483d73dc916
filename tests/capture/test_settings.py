"""Capture settings are checked at start-up; a bad one names itself and the accepted values."""

from __future__ import annotations

from typing import Any

import pytest

from shadowguard import ConfigError
from shadowguard.capture import DEFAULT_REDACT, CaptureSettings, capture_from
from shadowguard.middleware.asgi import ShadowGuardMiddleware as ASGIMiddleware
from shadowguard.middleware.wsgi import ShadowGuardMiddleware as WSGIMiddleware
from tests.capture._support import ListSink


async def _app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("not called")


def _wsgi(environ: Any, start_response: Any) -> list[bytes]:
    raise AssertionError("not called")


def test_defaults_and_unset_is_off() -> None:
    settings = CaptureSettings.from_env({})
    assert settings.url is None
    assert settings.label is None
    assert settings.max_body_bytes == 64 * 1024
    assert settings.headers == ("content-type",)
    assert settings.redact == DEFAULT_REDACT
    assert capture_from(CaptureSettings()) is None


def test_every_setting_from_the_environment(tmp_path: Any) -> None:
    settings = CaptureSettings.from_env(
        {
            "SHADOWGUARD_CAPTURE": f"sqlite://{tmp_path}/c.db",
            "SHADOWGUARD_CAPTURE_LABEL": "candidate",
            "SHADOWGUARD_CAPTURE_MAX_BODY": "1MiB",
            "SHADOWGUARD_CAPTURE_HEADERS": "Content-Type, ETag,,x-version",
            "SHADOWGUARD_CAPTURE_REDACT": "default, ssn_last4, Birth-Date",
            "SHADOWGUARD_CAPTURE_QUEUE": "50",
        }
    )
    assert (settings.scheme, settings.path) == ("sqlite", f"{tmp_path}/c.db")
    assert settings.label == "candidate"
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.headers == ("content-type", "etag", "x-version")
    assert settings.redact == DEFAULT_REDACT | {"ssnlast4", "birthdate"}
    assert settings.queue_size == 50
    assert CaptureSettings.from_env({"SHADOWGUARD_CAPTURE_REDACT": ""}).redact == frozenset()
    assert CaptureSettings.from_env({"SHADOWGUARD_CAPTURE_HEADERS": " "}).headers == ()
    assert CaptureSettings.from_env({"SHADOWGUARD_CAPTURE_MAX_BODY": "64k"}).max_body_bytes == 65536


@pytest.mark.parametrize(
    ("name", "raw", "accepted"),
    [
        ("SHADOWGUARD_CAPTURE", "postgres://db/x", "sqlite:///ABSOLUTE/PATH/FILE.db"),
        ("SHADOWGUARD_CAPTURE", "sqlite://relative.db", "jsonl:///ABSOLUTE/PATH/DIR"),
        ("SHADOWGUARD_CAPTURE", "/tmp/capture.db", "sqlite:///"),
        ("SHADOWGUARD_CAPTURE", "sqlite:///", "sqlite:///"),
        ("SHADOWGUARD_CAPTURE", "jsonl:///tmp/x?mode=ro", "jsonl:///"),
        ("SHADOWGUARD_CAPTURE_LABEL", "new code", "letters, digits"),
        ("SHADOWGUARD_CAPTURE_LABEL", "../etc", "letters, digits"),
        ("SHADOWGUARD_CAPTURE_MAX_BODY", "-1", "KiB or MiB"),
        ("SHADOWGUARD_CAPTURE_MAX_BODY", "64 GB", "KiB or MiB"),
        ("SHADOWGUARD_CAPTURE_HEADERS", "content type", "header names"),
        ("SHADOWGUARD_CAPTURE_REDACT", "pass*word", "JSON field names"),
        ("SHADOWGUARD_CAPTURE_QUEUE", "0", "records >= 1"),
        ("SHADOWGUARD_CAPTURE_QUEUE", "many", "records >= 1"),
    ],
)
def test_bad_values_name_the_setting_and_the_accepted_values(
    name: str, raw: str, accepted: str
) -> None:
    with pytest.raises(ConfigError) as info:
        CaptureSettings.from_env({name: raw})
    message = str(info.value)
    assert message.startswith(f"{name}={raw!r} is not valid: accepted values are")
    assert accepted in message


def test_every_middleware_fails_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOWGUARD_CAPTURE", "mysql://x")
    for build in (lambda: ASGIMiddleware(_app), lambda: WSGIMiddleware(_wsgi)):
        with pytest.raises(ConfigError, match=r"SHADOWGUARD_CAPTURE='mysql://x'.*sqlite:///"):
            build()
    # The option wins over the environment, and False turns capture off.
    assert ASGIMiddleware(_app, capture=False)._capture is None
    monkeypatch.delenv("SHADOWGUARD_CAPTURE")
    monkeypatch.setenv("SHADOWGUARD_CAPTURE_LABEL", "bad label")
    with pytest.raises(ConfigError, match="SHADOWGUARD_CAPTURE_LABEL"):
        WSGIMiddleware(_wsgi, capture=ListSink())


def test_the_capture_option(tmp_path: Any) -> None:
    sink = ListSink()
    assert capture_from(sink) is not None
    assert capture_from(f"jsonl://{tmp_path}") is not None
    assert capture_from(CaptureSettings(url=f"sqlite://{tmp_path}/x.db", label="secondary"))
    for bad in ("ftp://x", 3, True, object()):
        with pytest.raises(ConfigError, match="accepted values are"):
            capture_from(bad)
    with pytest.raises(ConfigError, match="label='a b'"):
        CaptureSettings(url=f"sqlite://{tmp_path}/x.db", label="a b")
    with pytest.raises(ConfigError, match="unknown capture setting"):
        CaptureSettings.from_env({}, lable="x")


def test_no_capture_costs_the_middleware_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHADOWGUARD_CAPTURE", raising=False)
    assert ASGIMiddleware(_app)._capture is None
    assert WSGIMiddleware(_wsgi).capture is None
