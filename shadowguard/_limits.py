"""Settings that protect the primary from its shadow: names, defaults and strict parsers.

The admission limits of the middleware (concurrent shadow requests, the age budget), the
lock bounds of shadow database work, and the suffix that keeps shadow Kafka consumers out
of the primary's consumer groups. :class:`shadowguard.Settings` holds the values.
"""

from __future__ import annotations

import math
import re

from shadowguard.errors import ConfigError

__all__ = [
    "DB_BOUND_FIELDS",
    "DEFAULT_DB_IDLE_TIMEOUT_MS",
    "DEFAULT_DB_LOCK_TIMEOUT_MS",
    "DEFAULT_DB_STATEMENT_TIMEOUT_MS",
    "DEFAULT_KAFKA_SHADOW_GROUP_SUFFIX",
    "DEFAULT_MAX_CONCURRENT_SHADOW",
    "DEFAULT_SHADOW_BUDGET_SECONDS",
    "ENV_CANCEL_DISCONNECTED_SHADOW",
    "ENV_DB_IDLE_TIMEOUT",
    "ENV_DB_LOCK_TIMEOUT",
    "ENV_DB_STATEMENT_TIMEOUT",
    "ENV_KAFKA_SHADOW_GROUP_SUFFIX",
    "ENV_MAX_CONCURRENT_SHADOW",
    "ENV_SHADOW_BUDGET_SECONDS",
    "check_db_bound",
    "check_group_suffix",
    "parse_budget",
    "parse_db_bound",
    "parse_limit",
]

# -- admission of shadow requests --
#: Shadow requests one process runs at once; beyond it they get a 503. ``off``: no limit.
ENV_MAX_CONCURRENT_SHADOW = "SHADOWGUARD_MAX_CONCURRENT_SHADOW"
#: Seconds after which a shadow request (aged by its proxy's start header) is not started.
ENV_SHADOW_BUDGET_SECONDS = "SHADOWGUARD_SHADOW_BUDGET_SECONDS"
#: Whether ASGI shadow work is cancelled when its mirror client disconnects.
ENV_CANCEL_DISCONNECTED_SHADOW = "SHADOWGUARD_CANCEL_DISCONNECTED_SHADOW"
DEFAULT_MAX_CONCURRENT_SHADOW = 32
#: Envoy's default route timeout: a mirror copy older than this has no one waiting for it.
DEFAULT_SHADOW_BUDGET_SECONDS = 15.0
_LIMIT_ACCEPTED = "whole numbers >= 0 (0 sheds every shadow request) or off (no limit)"
_BUDGET_ACCEPTED = "numbers of seconds > 0 (for example 15 or 2.5) or off (no budget)"

# -- lock bounds of shadow database work (issue 19) --
#: How long a shadow statement waits for a lock (``150ms``, ``1s``, ``off``).
ENV_DB_LOCK_TIMEOUT = "SHADOWGUARD_DB_LOCK_TIMEOUT"
#: How long one shadow statement may run.
ENV_DB_STATEMENT_TIMEOUT = "SHADOWGUARD_DB_STATEMENT_TIMEOUT"
#: How long a shadow transaction may sit idle (PostgreSQL; MariaDB closes the connection).
ENV_DB_IDLE_TIMEOUT = "SHADOWGUARD_DB_IDLE_TIMEOUT"
DEFAULT_DB_LOCK_TIMEOUT_MS = 100
DEFAULT_DB_STATEMENT_TIMEOUT_MS = 5000
DEFAULT_DB_IDLE_TIMEOUT_MS = 5000
DB_BOUND_FIELDS = {
    "db_lock_timeout_ms": ENV_DB_LOCK_TIMEOUT,
    "db_statement_timeout_ms": ENV_DB_STATEMENT_TIMEOUT,
    "db_idle_timeout_ms": ENV_DB_IDLE_TIMEOUT,
}
_DB_BOUND_MAX_MS = 2**31 - 1  # PostgreSQL's limit for these settings
_DB_BOUND = re.compile(r"^(\d+)\s*(ms|s)?\Z", re.I)
_DB_BOUND_ACCEPTED = (
    "a duration of at least 1 ms: whole milliseconds (250 or 250ms) or seconds (5s), "
    "or off for no bound"
)


def parse_db_bound(name: str, raw: str) -> int | None:
    """Parse a lock bound strictly: milliseconds, or None for ``off``."""
    value = raw.strip()
    if value.lower() == "off":
        return None
    m = _DB_BOUND.match(value)
    if m is not None:
        ms = int(m.group(1)) * (1000 if (m.group(2) or "").lower() == "s" else 1)
        if 1 <= ms <= _DB_BOUND_MAX_MS:
            return ms
    raise ConfigError(f"{name}={raw!r} is not valid: accepted values are {_DB_BOUND_ACCEPTED}")


def check_db_bound(name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _DB_BOUND_MAX_MS:
        raise ConfigError(
            f"{name}={value!r} is not valid: accepted values are whole milliseconds from 1 to "
            f"{_DB_BOUND_MAX_MS}, or None for no bound"
        )


def parse_limit(name: str, raw: str) -> int | None:
    """Parse ``SHADOWGUARD_MAX_CONCURRENT_SHADOW``: a whole number >= 0, or ``off``."""
    value = raw.strip().lower()
    if value == "off":
        return None
    if not value.isascii() or not value.isdigit():
        raise ConfigError(f"{name}={raw!r} is not valid: accepted values are {_LIMIT_ACCEPTED}")
    return int(value)


def parse_budget(name: str, raw: str) -> float | None:
    """Parse ``SHADOWGUARD_SHADOW_BUDGET_SECONDS``: a finite number of seconds > 0, or ``off``."""
    value = raw.strip().lower()
    if value == "off":
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not value.isascii() or not 0 < seconds < math.inf:
        raise ConfigError(f"{name}={raw!r} is not valid: accepted values are {_BUDGET_ACCEPTED}")
    return seconds


# -- consumer groups of shadow Kafka consumers (issue 14) --
#: Appended to ``group.id`` (and ``group.instance.id``) of a consumer created in shadow.
ENV_KAFKA_SHADOW_GROUP_SUFFIX = "SHADOWGUARD_KAFKA_SHADOW_GROUP_SUFFIX"
DEFAULT_KAFKA_SHADOW_GROUP_SUFFIX = "-shadow"
# Kafka's own alphabet for names: a suffix from it keeps any group id the primary can use
# valid, and cannot be mistaken for whitespace or a separator in tools that print groups.
_GROUP_SUFFIX = re.compile(r"^[A-Za-z0-9._-]{1,100}\Z")
_GROUP_SUFFIX_ACCEPTED = (
    "1 to 100 characters of a-z A-Z 0-9 . _ - (for example -shadow); it cannot be empty, "
    "or shadow consumers would join the primary's consumer groups"
)


def check_group_suffix(name: str, value: object) -> str:
    """A shadow consumer group suffix: non-empty, Kafka's name alphabet; else ConfigError."""
    if not isinstance(value, str) or not _GROUP_SUFFIX.match(value):
        raise ConfigError(
            f"{name}={value!r} is not valid: accepted values are {_GROUP_SUFFIX_ACCEPTED}"
        )
    return value
