"""Settings are parsed once, strictly, with errors that name the setting and the accepted values."""

from __future__ import annotations

import subprocess
import sys

import pytest

import shadowguard
from shadowguard import ConfigError, Settings, _config


@pytest.mark.parametrize(
    ("raw", "mode"),
    [
        *[
            (v, "shadow")
            for v in ("true", "1", "yes", "on", "TRUE", "True", " yes ", "On", "\ttrue\n")
        ],
        *[(v, "primary") for v in ("false", "0", "no", "off", "FALSE", "No", " off ", "Off")],
        *[(v, "auto") for v in ("", "  ", "auto", "AUTO", " Auto ")],
    ],
)
def test_shadow_mode_accepted_values(raw: str, mode: str) -> None:
    assert Settings.from_env({"SHADOW_MODE": raw}).mode == mode


def test_shadow_mode_unset_is_auto() -> None:
    assert Settings.from_env({}).mode == "auto"


@pytest.mark.parametrize(
    "raw",
    [
        "ture",
        "2",
        "tru e",
        "ｔｒｕｅ",
        "ｏｎ",
        "shadow",
        "primary",
        "y",
        "t",
        "-1",
        "true,false",
        "1.0",
        "none",
    ],
)
def test_shadow_mode_garbage_is_an_error(raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"SHADOW_MODE": raw})
    message = str(info.value)
    assert "SHADOW_MODE" in message
    assert repr(raw) in message
    for accepted in ("true/1/yes/on", "false/0/no/off", "auto"):
        assert accepted in message


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("SHADOWGUARD_HOST_SUFFIX", "maybe"),
        ("SHADOWGUARD_BAGGAGE", "2"),
        ("SHADOWGUARD_MAX_SUPPRESSIONS", "-1"),
        ("SHADOWGUARD_MAX_SUPPRESSIONS", "lots"),
        ("SHADOWGUARD_MARKER_HEADER", "x shadow"),
    ],
)
def test_other_settings_garbage_names_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: raw})


def test_settings_from_env() -> None:
    s = Settings.from_env(
        {
            "SHADOWGUARD_MARKER_HEADER": "X-Mirror",
            "SHADOWGUARD_MARKER_SECRET": "hunter2",
            "SHADOWGUARD_HOST_SUFFIX": "off",
            "SHADOWGUARD_SHADOW_HOSTS": "a-shadow, B-SHADOW. ,",
            "SHADOWGUARD_BAGGAGE": "yes",
            "SHADOWGUARD_MAX_SUPPRESSIONS": "5",
        }
    )
    assert s == Settings(
        marker_header="x-mirror",
        marker_secret="hunter2",
        host_suffix=False,
        shadow_hosts=frozenset({"a-shadow", "b-shadow"}),
        baggage=True,
        max_suppressions=5,
    )
    assert "hunter2" not in repr(s)  # the secret is not printed


def test_arguments_override_environment_and_unknown_names_fail() -> None:
    assert Settings.from_env({"SHADOW_MODE": "true"}, mode="auto").mode == "auto"
    with pytest.raises(ConfigError, match="accepted settings are"):
        Settings.from_env({}, marker="x")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "sometimes"},
        {"max_suppressions": -3},
        {"max_suppressions": True},
        {"host_suffix": "yes"},
        {"shadow_hosts": "a-shadow"},
    ],
)
def test_bad_arguments_fail(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Settings(**kwargs)  # type: ignore[arg-type]


def test_configure_sets_process_mode() -> None:
    try:
        shadowguard.configure(mode="shadow")
        assert shadowguard.is_shadow()
        assert shadowguard.current_scope() is None
        shadowguard.configure(mode="primary")
        assert not shadowguard.is_shadow()
    finally:
        _config.reset()
    assert not _config.PROCESS.shadow


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {k: v for k, v in os.environ.items() if k != "SHADOW_MODE"}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=60
    )


def test_env_shadow_mode_true_makes_process_shadow() -> None:
    result = _run("import shadowguard; print(shadowguard.is_shadow())", SHADOW_MODE="yes")
    assert result.stdout.strip() == "True", result.stderr


def test_malformed_shadow_mode_fails_closed_then_fails_at_start_up() -> None:
    """Import never breaks, but the process is shadow and start-up raises ConfigError."""
    code = (
        "import shadowguard\n"
        "print(shadowguard.is_shadow())\n"
        "try:\n    shadowguard.install()\nexcept shadowguard.ConfigError as e:\n    print('error', e)\n"
    )
    result = _run(code, SHADOW_MODE="ture")
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "True", result.stderr
    assert lines[1].startswith("error SHADOW_MODE='ture' is not valid")


@pytest.mark.parametrize(
    "raw", ["orders", "orders-shadow:8080", "orders-shadow, api", "orders shadow"]
)
def test_shadow_hosts_that_can_never_match_are_errors(raw: str) -> None:
    """An allowlist entry that no mirrored Host could match would silently make shadow primary."""
    with pytest.raises(ConfigError, match=r"SHADOWGUARD_SHADOW_HOSTS.*ending in -shadow"):
        Settings.from_env({"SHADOWGUARD_SHADOW_HOSTS": raw})
    with pytest.raises(ConfigError, match="shadow_hosts"):
        Settings(shadow_hosts=frozenset(h.strip() for h in raw.split(",")))


def test_shadow_hosts_accepts_ipv6_and_trailing_dot() -> None:
    s = Settings.from_env({"SHADOWGUARD_SHADOW_HOSTS": "[::1]-shadow, Orders-Shadow."})
    assert s.shadow_hosts == frozenset({"[::1]-shadow", "orders-shadow"})


@pytest.mark.parametrize(
    "secret",
    ["s3cret\n", "s3cret\r\n", " s3cret", "s3cret ", "s3cr\tet\n", "sécret", "s3\x00cret", "\n"],
)
def test_a_marker_secret_no_header_can_carry_fails_at_start_up(secret: str) -> None:
    """A secret that never matches would make every mirrored request primary: refused loudly."""
    with pytest.raises(ConfigError, match="SHADOWGUARD_MARKER_SECRET") as env_error:
        Settings.from_env({"SHADOWGUARD_MARKER_SECRET": secret})
    assert "s3cr" not in str(env_error.value)
    with pytest.raises(ConfigError, match="marker_secret"):
        Settings(marker_secret=secret)


@pytest.mark.parametrize("secret", ["s3cret", "a b", "tok-en_1.2~", "!#$%&'*+-.^`|~"])
def test_a_marker_secret_a_header_can_carry_is_accepted(secret: str) -> None:
    assert Settings.from_env({"SHADOWGUARD_MARKER_SECRET": secret}).marker_secret == secret


@pytest.mark.parametrize("header", ["x_mirror", "X_Shadow_Request"])
def test_a_marker_header_wsgi_and_asgi_would_read_differently_is_refused(header: str) -> None:
    with pytest.raises(ConfigError, match=r"SHADOWGUARD_MARKER_HEADER.*no '_'"):
        Settings.from_env({"SHADOWGUARD_MARKER_HEADER": header})
    with pytest.raises(ConfigError, match=r"marker_header.*no '_'"):
        Settings(marker_header=header)


def test_install_refuses_options_for_an_integration_it_was_not_asked_to_install() -> None:
    with pytest.raises(ConfigError, match=r"requests.*name the integration too"):
        shadowguard.install("smtplib", requests={"default": None})
    assert shadowguard.installed() == []


def test_a_marker_header_with_a_newline_is_refused() -> None:
    with pytest.raises(ConfigError, match="marker_header"):
        Settings(marker_header="x-mirror\n")
