"""The lock-bound settings of shadow database work: parsed strictly, errors name the setting."""

from __future__ import annotations

import pytest

from shadowguard import ConfigError, Settings
from shadowguard._config import (
    ENV_DB_IDLE_TIMEOUT,
    ENV_DB_LOCK_TIMEOUT,
    ENV_DB_STATEMENT_TIMEOUT,
)


def test_defaults() -> None:
    settings = Settings()
    assert settings.db_lock_timeout_ms == 100
    assert settings.db_statement_timeout_ms == 5000
    assert settings.db_idle_timeout_ms == 5000


@pytest.mark.parametrize(
    ("raw", "ms"),
    [("250", 250), ("250ms", 250), (" 2s ", 2000), ("2S", 2000), ("OFF", None), ("1", 1)],
)
def test_environment_values(raw: str, ms: int | None) -> None:
    env = {ENV_DB_LOCK_TIMEOUT: raw, ENV_DB_STATEMENT_TIMEOUT: raw, ENV_DB_IDLE_TIMEOUT: raw}
    settings = Settings.from_env(env)
    assert (
        settings.db_lock_timeout_ms,
        settings.db_statement_timeout_ms,
        settings.db_idle_timeout_ms,
    ) == (ms, ms, ms)


@pytest.mark.parametrize("raw", ["", "0", "0ms", "-5", "1.5s", "5m", "100 us", "2147483648", "on"])
@pytest.mark.parametrize(
    "name", [ENV_DB_LOCK_TIMEOUT, ENV_DB_STATEMENT_TIMEOUT, ENV_DB_IDLE_TIMEOUT]
)
def test_bad_environment_values_name_the_variable_and_accepted_values(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{name}=.* accepted values are .*off for no bound"):
        Settings.from_env({name: raw})


@pytest.mark.parametrize("value", [0, -1, 1.5, "100", True, 2**31])
def test_bad_arguments_name_the_setting(value: object) -> None:
    with pytest.raises(ConfigError, match=r"^db_lock_timeout_ms=.* or None for no bound"):
        Settings(db_lock_timeout_ms=value)  # type: ignore[arg-type]


def test_arguments_override_the_environment() -> None:
    settings = Settings.from_env({ENV_DB_LOCK_TIMEOUT: "off"}, db_lock_timeout_ms=50)
    assert settings.db_lock_timeout_ms == 50
    assert Settings(db_idle_timeout_ms=None).db_idle_timeout_ms is None
