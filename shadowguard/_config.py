"""Settings: read once from arguments or the environment, validated strictly.

Every environment variable shadowguard reads is named here, and only here.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from shadowguard._hosts import host_is_shadow
from shadowguard._limits import (
    DB_BOUND_FIELDS,
    DEFAULT_DB_IDLE_TIMEOUT_MS,
    DEFAULT_DB_LOCK_TIMEOUT_MS,
    DEFAULT_DB_STATEMENT_TIMEOUT_MS,
    DEFAULT_KAFKA_SHADOW_GROUP_SUFFIX,
    DEFAULT_MAX_CONCURRENT_SHADOW,
    DEFAULT_SHADOW_BUDGET_SECONDS,
    ENV_CANCEL_DISCONNECTED_SHADOW,
    ENV_DB_IDLE_TIMEOUT,
    ENV_DB_LOCK_TIMEOUT,
    ENV_DB_STATEMENT_TIMEOUT,
    ENV_KAFKA_SHADOW_GROUP_SUFFIX,
    ENV_MAX_CONCURRENT_SHADOW,
    ENV_SHADOW_BUDGET_SECONDS,
    check_db_bound,
    check_group_suffix,
    parse_budget,
    parse_db_bound,
    parse_limit,
)
from shadowguard._overrides import with_overrides
from shadowguard.errors import ConfigError

__all__ = [
    "ENV_BAGGAGE",
    "ENV_CANCEL_DISCONNECTED_SHADOW",
    "ENV_DB_IDLE_TIMEOUT",
    "ENV_DB_LOCK_TIMEOUT",
    "ENV_DB_STATEMENT_TIMEOUT",
    "ENV_HOST_SUFFIX",
    "ENV_KAFKA_SHADOW_GROUP_SUFFIX",
    "ENV_MARKER_HEADER",
    "ENV_MARKER_SECRET",
    "ENV_MAX_CONCURRENT_SHADOW",
    "ENV_MAX_SUPPRESSIONS",
    "ENV_SHADOW_BUDGET_SECONDS",
    "ENV_SHADOW_HOSTS",
    "ENV_SHADOW_MODE",
    "PROCESS",
    "Mode",
    "ProcessMode",
    "Settings",
    "configure",
    "get_settings",
    "parse_bool",
]

logger = logging.getLogger("shadowguard")

#: Whole-process switch: true -> every request is shadow, false -> every request is
#: primary (per-request signals ignored), unset/empty/``auto`` -> per-request detection.
ENV_SHADOW_MODE = "SHADOW_MODE"
#: Name of the marker header a proxy adds to mirrored requests; empty disables it.
ENV_MARKER_HEADER = "SHADOWGUARD_MARKER_HEADER"
#: When set, the marker header only counts if its value equals this secret.
ENV_MARKER_SECRET = "SHADOWGUARD_MARKER_SECRET"
#: Whether the ``-shadow`` Host/``:authority`` suffix marks a request as shadow.
ENV_HOST_SUFFIX = "SHADOWGUARD_HOST_SUFFIX"
#: Comma-separated exact shadow host names; when set, only these hosts count as shadow.
ENV_SHADOW_HOSTS = "SHADOWGUARD_SHADOW_HOSTS"
#: Whether the W3C ``baggage`` entry ``shadow=true`` marks a request as shadow.
ENV_BAGGAGE = "SHADOWGUARD_BAGGAGE"
#: How many Suppression records one scope keeps (counts stay exact beyond it).
ENV_MAX_SUPPRESSIONS = "SHADOWGUARD_MAX_SUPPRESSIONS"


TRUE_VALUES = frozenset({"true", "1", "yes", "on"})
FALSE_VALUES = frozenset({"false", "0", "no", "off"})
_BOOL_ACCEPTED = "true/1/yes/on or false/0/no/off (case-insensitive)"

Mode = Literal["auto", "shadow", "primary"]
_MODES: tuple[Mode, ...] = ("auto", "shadow", "primary")

DEFAULT_MARKER_HEADER = "x-shadow-request"
DEFAULT_MAX_SUPPRESSIONS = 1000

# RFC 9110 token characters, less "_": WSGI servers read "x_mirror" and "x-mirror" as one
# header (both become HTTP_X_MIRROR) while ASGI keeps them apart, so a name with "_" would be
# matched differently by the two kinds of middleware.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^`|~0-9A-Za-z]+\Z")
_HEADER_ACCEPTED = "an HTTP header name (letters, digits and !#$%&'*+-.^`|~; no '_')"
# What a header value can carry: visible ASCII, with spaces or tabs only inside. A secret with
# a trailing newline (a Kubernetes secret written with echo) never matches any header value,
# so every mirrored request would run as primary: refuse it.
_HEADER_VALUE = re.compile(r"^[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?\Z")
_SECRET_ACCEPTED = (
    "visible ASCII characters (spaces or tabs only between them), as an HTTP header value "
    "can carry; remove the trailing newline or spaces from the secret file, or leave it "
    "empty to accept any marker value"
)


def check_marker_secret(name: str, secret: str) -> None:
    """A marker secret must be a value a header can carry, or it never matches."""
    if secret and not _HEADER_VALUE.match(secret):
        raise ConfigError(
            f"{name}=<{len(secret)} characters, not shown> is not valid: accepted values are "
            f"{_SECRET_ACCEPTED}"
        )


def parse_bool(name: str, raw: str) -> bool:
    """Parse a boolean setting strictly; anything unknown raises ConfigError naming ``name``."""
    value = raw.strip().lower()
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    raise ConfigError(f"{name}={raw!r} is not valid: accepted values are {_BOOL_ACCEPTED}")


def parse_mode(raw: str | bool | None, name: str = ENV_SHADOW_MODE) -> Mode:
    """Parse ``SHADOW_MODE``: a boolean, or unset/empty/``auto`` for per-request detection."""
    if raw is None:
        return "auto"
    if isinstance(raw, bool):
        return "shadow" if raw else "primary"
    value = raw.strip().lower()
    if value in ("", "auto"):
        return "auto"
    if name != ENV_SHADOW_MODE and value in _MODES:
        return value
    if value in TRUE_VALUES:
        return "shadow"
    if value in FALSE_VALUES:
        return "primary"
    raise ConfigError(
        f"{name}={raw!r} is not valid: accepted values are true/1/yes/on (every request is "
        "shadow), false/0/no/off (every request is primary), or empty/auto (detect per "
        "request), case-insensitive"
    )


def _normalize_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _check_shadow_hosts(hosts: frozenset[str], name: str) -> None:
    """Every entry must be a shadow host name: one that could never match is a silent leak."""
    bad = sorted(h for h in hosts if ":" in h.rpartition("]")[2] or not host_is_shadow(h))
    if bad:
        raise ConfigError(
            f"{name}={', '.join(bad)!r} is not valid: accepted values are host names as the "
            "proxy sends them to the shadow, ending in -shadow and without a port "
            "(for example orders-shadow or orders.internal-shadow)"
        )


@dataclass(frozen=True)
class Settings:
    """Resolved shadowguard settings. Build with :meth:`from_env` or directly with arguments."""

    mode: Mode = "auto"
    marker_header: str | None = DEFAULT_MARKER_HEADER
    marker_secret: str | None = field(default=None, repr=False)
    host_suffix: bool = True
    shadow_hosts: frozenset[str] | None = None
    baggage: bool = False
    max_suppressions: int = DEFAULT_MAX_SUPPRESSIONS
    # Lock bounds of shadow database work, in milliseconds; None: no bound.
    db_lock_timeout_ms: int | None = DEFAULT_DB_LOCK_TIMEOUT_MS
    db_statement_timeout_ms: int | None = DEFAULT_DB_STATEMENT_TIMEOUT_MS
    db_idle_timeout_ms: int | None = DEFAULT_DB_IDLE_TIMEOUT_MS
    max_concurrent_shadow: int | None = DEFAULT_MAX_CONCURRENT_SHADOW
    shadow_budget_seconds: float | None = DEFAULT_SHADOW_BUDGET_SECONDS
    cancel_disconnected_shadow: bool = True
    kafka_shadow_group_suffix: str = DEFAULT_KAFKA_SHADOW_GROUP_SUFFIX

    def __post_init__(self) -> None:
        mode = parse_mode(self.mode, "mode")
        object.__setattr__(self, "mode", mode)
        header = self.marker_header
        if header is not None:
            if not isinstance(header, str) or (header and not _TOKEN.match(header)):
                raise ConfigError(
                    f"marker_header={header!r} is not valid: accepted values are "
                    f"{_HEADER_ACCEPTED}, or empty to disable"
                )
            object.__setattr__(self, "marker_header", header.lower() or None)
        if self.marker_secret is not None:
            if not isinstance(self.marker_secret, str):
                raise ConfigError("marker_secret must be a string")
            check_marker_secret("marker_secret", self.marker_secret)
        if self.marker_secret == "":
            object.__setattr__(self, "marker_secret", None)
        for name in ("host_suffix", "baggage", "cancel_disconnected_shadow"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    f"{name}={getattr(self, name)!r} is not valid: accepted values are True or False"
                )
        if self.shadow_hosts is not None:
            hosts: object = self.shadow_hosts
            if isinstance(hosts, str) or not isinstance(hosts, Iterable):
                raise ConfigError(
                    f"shadow_hosts={hosts!r} is not valid: accepted values are a collection "
                    "of host names (without port)"
                )
            normalized = frozenset(_normalize_host(h) for h in hosts if _normalize_host(h))
            _check_shadow_hosts(normalized, "shadow_hosts")
            object.__setattr__(self, "shadow_hosts", normalized or None)
        limit = self.max_suppressions
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ConfigError(
                f"max_suppressions={limit!r} is not valid: accepted values are whole numbers >= 0"
            )
        for name in DB_BOUND_FIELDS:
            check_db_bound(name, getattr(self, name))
        shadow_limit = self.max_concurrent_shadow
        if shadow_limit is not None and (
            isinstance(shadow_limit, bool) or not isinstance(shadow_limit, int) or shadow_limit < 0
        ):
            raise ConfigError(
                f"max_concurrent_shadow={shadow_limit!r} is not valid: accepted values are whole "
                "numbers >= 0 (0 sheds every shadow request) or None (no limit)"
            )
        budget = self.shadow_budget_seconds
        if budget is not None:
            if isinstance(budget, bool) or not isinstance(budget, (int, float)):
                budget = math.nan
            if not 0 < budget < math.inf:
                raise ConfigError(
                    f"shadow_budget_seconds={self.shadow_budget_seconds!r} is not valid: "
                    "accepted values are numbers of seconds > 0 or None (no budget)"
                )
            object.__setattr__(self, "shadow_budget_seconds", float(budget))
        check_group_suffix("kafka_shadow_group_suffix", self.kafka_shadow_group_suffix)

    @property
    def forced(self) -> bool | None:
        """True or False when ``mode`` decides for every request, None for per-request detection."""
        return None if self.mode == "auto" else self.mode == "shadow"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``environ`` (default ``os.environ``); keyword arguments take precedence."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if ENV_SHADOW_MODE in env:
            values["mode"] = parse_mode(env[ENV_SHADOW_MODE])
        if ENV_MARKER_HEADER in env:
            values["marker_header"] = env[ENV_MARKER_HEADER].strip()
            if values["marker_header"] and not _TOKEN.match(values["marker_header"]):
                raise ConfigError(
                    f"{ENV_MARKER_HEADER}={env[ENV_MARKER_HEADER]!r} is not valid: accepted "
                    f"values are {_HEADER_ACCEPTED}, or empty to disable the marker header"
                )
        if ENV_MARKER_SECRET in env:
            check_marker_secret(ENV_MARKER_SECRET, env[ENV_MARKER_SECRET])
            values["marker_secret"] = env[ENV_MARKER_SECRET]
        if ENV_HOST_SUFFIX in env:
            values["host_suffix"] = parse_bool(ENV_HOST_SUFFIX, env[ENV_HOST_SUFFIX])
        if ENV_BAGGAGE in env:
            values["baggage"] = parse_bool(ENV_BAGGAGE, env[ENV_BAGGAGE])
        if ENV_SHADOW_HOSTS in env:
            hosts = frozenset(
                _normalize_host(h) for h in env[ENV_SHADOW_HOSTS].split(",") if h.strip()
            )
            _check_shadow_hosts(hosts, ENV_SHADOW_HOSTS)
            values["shadow_hosts"] = hosts
        if ENV_MAX_SUPPRESSIONS in env:
            raw = env[ENV_MAX_SUPPRESSIONS].strip()
            if not raw.isascii() or not raw.isdigit():
                raise ConfigError(
                    f"{ENV_MAX_SUPPRESSIONS}={env[ENV_MAX_SUPPRESSIONS]!r} is not valid: "
                    "accepted values are whole numbers >= 0"
                )
            values["max_suppressions"] = int(raw)
        for name, env_name in DB_BOUND_FIELDS.items():
            if env_name in env:
                values[name] = parse_db_bound(env_name, env[env_name])
        if ENV_MAX_CONCURRENT_SHADOW in env:
            values["max_concurrent_shadow"] = parse_limit(
                ENV_MAX_CONCURRENT_SHADOW, env[ENV_MAX_CONCURRENT_SHADOW]
            )
        if ENV_SHADOW_BUDGET_SECONDS in env:
            values["shadow_budget_seconds"] = parse_budget(
                ENV_SHADOW_BUDGET_SECONDS, env[ENV_SHADOW_BUDGET_SECONDS]
            )
        if ENV_CANCEL_DISCONNECTED_SHADOW in env:
            values["cancel_disconnected_shadow"] = parse_bool(
                ENV_CANCEL_DISCONNECTED_SHADOW, env[ENV_CANCEL_DISCONNECTED_SHADOW]
            )
        if ENV_KAFKA_SHADOW_GROUP_SUFFIX in env:
            suffix = env[ENV_KAFKA_SHADOW_GROUP_SUFFIX]
            values["kafka_shadow_group_suffix"] = check_group_suffix(
                ENV_KAFKA_SHADOW_GROUP_SUFFIX, suffix
            )
        return with_overrides(cls, values, overrides, "setting")

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied (validated like the constructor)."""
        return replace(self, **changes)


class ProcessMode:
    """Whether the whole process is shadow (``SHADOW_MODE=true``).

    One mutable flag read on every guarded call; :func:`configure` and :func:`reset` set it.
    ``settings`` is the process settings once loaded (None until then): the middleware
    reads it on every request, an attribute read instead of a call.
    """

    __slots__ = ("settings", "shadow")

    def __init__(self, shadow: bool) -> None:
        self.shadow = shadow
        self.settings: Settings | None = None

    def __repr__(self) -> str:
        return f"<shadowguard.ProcessMode shadow={self.shadow}>"


_settings: Settings | None = None
#: The process-wide shadow flag, read by :func:`shadowguard.is_shadow` and every guard;
#: set from the environment at the end of this module.
PROCESS = ProcessMode(False)


def get_settings() -> Settings:
    """The process-wide settings; raises ConfigError if the environment is malformed."""
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
        PROCESS.settings = _settings
    return _settings


def settings_or_defaults() -> Settings:
    """Like :func:`get_settings`, but never raises (for code on the request path)."""
    try:
        return get_settings()
    except ConfigError:
        return Settings()


def configure(settings: Settings | None = None, **options: Any) -> Settings:
    """Set the process-wide settings, from ``settings`` or from the environment plus ``options``."""
    global _settings
    new = settings.replace(**options) if settings is not None else Settings.from_env(**options)
    _settings = new
    PROCESS.settings = new
    PROCESS.shadow = new.forced is True
    return new


def reset() -> None:
    """Forget configured settings; the next use reads the environment again."""
    global _settings
    _settings = None
    PROCESS.settings = None
    PROCESS.shadow = initial_process_shadow()


def initial_process_shadow() -> bool:
    """Whether the process is shadow according to the environment, failing closed.

    Used at import, where raising would break every program that merely imports
    shadowguard: a malformed ``SHADOW_MODE`` makes the process shadow (nothing persists)
    and the ConfigError is raised at start-up by ``install()``, ``configure()`` or a
    middleware instead.
    """
    try:
        return get_settings().forced is True
    except ConfigError as exc:
        logger.error("%s; treating the whole process as shadow until this is fixed", exc)
        return True


PROCESS.shadow = initial_process_shadow()
