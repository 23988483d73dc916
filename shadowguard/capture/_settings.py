"""Capture settings: the ``SHADOWGUARD_CAPTURE*`` variables, their defaults and strict parsers.

Every value is checked when a middleware is built, so a malformed setting stops the
application at start-up with a :class:`~shadowguard.ConfigError` naming the setting and
the accepted values, never on a request.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from shadowguard._overrides import with_overrides
from shadowguard.errors import ConfigError

#: Where records go: ``sqlite:///ABSOLUTE/FILE.db``, ``jsonl:///ABSOLUTE/DIR`` or
#: ``kafka://HOST:PORT/TOPIC``; unset: off.
ENV_CAPTURE = "SHADOWGUARD_CAPTURE"
#: The label of this process's records; unset: ``primary`` or ``shadow`` per request.
ENV_CAPTURE_LABEL = "SHADOWGUARD_CAPTURE_LABEL"
#: The largest response body kept, in bytes (``65536``, ``64KiB``, ``1MiB``); ``0``: none.
ENV_CAPTURE_MAX_BODY = "SHADOWGUARD_CAPTURE_MAX_BODY"
#: Comma-separated response header names kept in each record.
ENV_CAPTURE_HEADERS = "SHADOWGUARD_CAPTURE_HEADERS"
#: Comma-separated JSON field names whose values are replaced; ``default`` is the built-in set.
ENV_CAPTURE_REDACT = "SHADOWGUARD_CAPTURE_REDACT"
#: Records waiting for the writer, at most; beyond it records are dropped and counted.
ENV_CAPTURE_QUEUE = "SHADOWGUARD_CAPTURE_QUEUE"

DEFAULT_MAX_BODY_BYTES = 64 * 1024
DEFAULT_QUEUE_SIZE = 1000
DEFAULT_HEADERS: tuple[str, ...] = ("content-type",)
#: Field names redacted by default. A field matches when its name, lower-cased and without
#: ``_``, ``-``, ``.`` or spaces, equals one of these or ends with one (``access_token``,
#: ``userPassword``, ``X-Api-Key``).
DEFAULT_REDACT: frozenset[str] = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "authorization",
        "apikey",
        "cookie",
        "session",
        "sessionid",
        "privatekey",
        "cardnumber",
        "creditcard",
        "pan",
        "cvv",
        "cvc",
        "iban",
        "ssn",
    }
)

_URL_ACCEPTED = (
    "sqlite:///ABSOLUTE/PATH/FILE.db (a SQLite file in WAL mode, shared by the processes "
    "of one machine), jsonl:///ABSOLUTE/PATH/DIR (one JSON lines file per process) or "
    "kafka://HOST:PORT[,HOST:PORT...]/TOPIC[?OPTION=VALUE&...] (a Kafka topic of letters, "
    "digits, '.', '_' or '-'; options: compression.type=none|gzip|snappy|lz4|zstd, "
    "linger.ms=0..60000 (default 50), message.timeout.ms=100..600000 (default 30000, "
    "above linger.ms))"
)
_KAFKA_HOST = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\]):(\d{1,5})\Z"
)
_KAFKA_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}\Z")
_KAFKA_COMPRESSION = frozenset({"none", "gzip", "snappy", "lz4", "zstd"})
#: The producer options a ``kafka://`` URL may set, with their bounds (inclusive).
_KAFKA_RANGES = {"linger.ms": (0, 60_000), "message.timeout.ms": (100, 600_000)}
#: The Kafka sink's ``linger.ms`` and ``message.timeout.ms`` unless the URL sets them.
KAFKA_LINGER_MS = 50
KAFKA_MESSAGE_TIMEOUT_MS = 30_000
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_LABEL_ACCEPTED = (
    "up to 64 letters, digits, '_', '.' or '-', starting with a letter or digit "
    "(for example primary, shadow, secondary, candidate)"
)
_SIZE = re.compile(r"^(\d+)\s*(b|kib|k|mib|m)?\Z", re.I)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kib": 1024, "m": 1024 * 1024, "mib": 1024 * 1024}
_SIZE_ACCEPTED = "whole numbers of bytes >= 0, optionally with KiB or MiB (65536, 64KiB, 1MiB)"
_QUEUE_ACCEPTED = "whole numbers of records >= 1"
_HEADER = re.compile(r"^[!#$%&'*+\-.^`|~0-9A-Za-z]+\Z")
_HEADERS_ACCEPTED = "comma-separated HTTP header names (content-type,etag), or empty for none"
_REDACT_ACCEPTED = (
    "comma-separated JSON field names (letters, digits, '_', '-', '.'), where 'default' "
    "stands for the built-in set (password, token, secret, ...), or empty for none"
)
_FIELD = re.compile(r"^[A-Za-z0-9_.\- ]+\Z")


def normalize_field(name: str) -> str:
    """A field name as redaction compares it: lower-cased, without ``_ - .`` and spaces."""
    return name.lower().replace("_", "").replace("-", "").replace(".", "").replace(" ", "")


@dataclass(frozen=True)
class KafkaTarget:
    """Where a ``kafka://`` URL sends records: the brokers, the topic, producer options."""

    bootstrap: str
    topic: str
    options: tuple[tuple[str, str], ...] = ()

    @property
    def where(self) -> str:
        """The URL's part after ``kafka://``, in a canonical form (options sorted)."""
        query = "&".join(f"{k}={v}" for k, v in self.options)
        return f"{self.bootstrap}/{self.topic}" + (f"?{query}" if query else "")


def parse_kafka(rest: str) -> KafkaTarget | None:
    """The target of ``kafka://`` + ``rest``, or None when it is malformed."""
    location, _, query = rest.partition("?")
    hosts, slash, topic = location.partition("/")
    if not slash or not _KAFKA_TOPIC.match(topic) or topic in (".", ".."):
        return None
    for host in hosts.split(","):
        m = _KAFKA_HOST.match(host)
        if m is None or not 1 <= int(m.group(1)) <= 65535:
            return None
    options: dict[str, str] = {}
    if "?" in rest:
        for item in query.split("&"):
            key, eq, value = item.partition("=")
            if not eq or key in options or not _kafka_option_ok(key, value):
                return None
            options[key] = value
    # The client refuses a producer that may wait longer to send than to deliver.
    linger = int(options.get("linger.ms", KAFKA_LINGER_MS))
    if linger >= int(options.get("message.timeout.ms", KAFKA_MESSAGE_TIMEOUT_MS)):
        return None
    return KafkaTarget(hosts, topic, tuple(sorted(options.items())))


def _kafka_option_ok(key: str, value: str) -> bool:
    if key == "compression.type":
        return value in _KAFKA_COMPRESSION
    bounds = _KAFKA_RANGES.get(key)
    if bounds is None or not value.isascii() or not value.isdigit() or len(value) > 7:
        return False
    return bounds[0] <= int(value) <= bounds[1]


def parse_url(raw: str, name: str = ENV_CAPTURE) -> tuple[str, str]:
    """``(scheme, where)`` of a capture URL; ConfigError naming ``name`` otherwise.

    ``where`` is the absolute path of a ``sqlite`` file or ``jsonl`` directory, or for
    ``kafka`` the canonical :attr:`KafkaTarget.where` (read it with :func:`parse_kafka`).
    """
    value = raw.strip()
    scheme, sep, rest = value.partition("://")
    scheme = scheme.lower()
    if sep and scheme == "kafka":
        target = parse_kafka(rest)
        if target is not None:
            return scheme, target.where
    if (
        sep
        and scheme in ("sqlite", "jsonl")
        and rest.startswith("/")
        and rest.strip("/")
        and not any(c in rest for c in "?#\x00")
    ):
        return scheme, os.path.normpath("/" + rest.lstrip("/"))
    raise ConfigError(f"{name}={raw!r} is not valid: accepted values are {_URL_ACCEPTED}")


def parse_size(name: str, raw: str) -> int:
    """A byte count: ``65536``, ``64KiB``, ``1MiB``."""
    m = _SIZE.match(raw.strip())
    if m is None:
        raise ConfigError(f"{name}={raw!r} is not valid: accepted values are {_SIZE_ACCEPTED}")
    return int(m.group(1)) * _SIZE_UNITS[(m.group(2) or "").lower()]


def parse_queue(name: str, raw: str) -> int:
    value = raw.strip()
    if not value.isascii() or not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{name}={raw!r} is not valid: accepted values are {_QUEUE_ACCEPTED}")
    return int(value)


def _names(
    name: str, raw: str | Iterable[str], pattern: re.Pattern[str], accepted: str
) -> list[str]:
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    names = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{name}={raw!r} is not valid: accepted values are {accepted}")
        item = item.strip()
        if not item:
            continue
        if not pattern.match(item):
            raise ConfigError(f"{name}={raw!r} is not valid: accepted values are {accepted}")
        names.append(item)
    return names


def parse_headers(name: str, raw: str | Iterable[str]) -> tuple[str, ...]:
    """Header names, lower-cased, in order, without repeats."""
    names = _names(name, raw, _HEADER, _HEADERS_ACCEPTED)
    return tuple(dict.fromkeys(n.lower() for n in names))


def parse_redact(name: str, raw: str | Iterable[str]) -> frozenset[str]:
    """Normalized field names; ``default`` expands to :data:`DEFAULT_REDACT`."""
    found: set[str] = set()
    for item in _names(name, raw, _FIELD, _REDACT_ACCEPTED):
        if item.lower() == "default":
            found |= DEFAULT_REDACT
        elif normalize_field(item):
            found.add(normalize_field(item))
        else:
            raise ConfigError(
                f"{name}={raw!r} is not valid: accepted values are {_REDACT_ACCEPTED}"
            )
    return frozenset(found)


def check_label(name: str, label: object) -> None:
    if label is not None and (not isinstance(label, str) or not _LABEL.match(label)):
        raise ConfigError(f"{name}={label!r} is not valid: accepted values are {_LABEL_ACCEPTED}")


@dataclass(frozen=True)
class CaptureSettings:
    """What is captured and where. Build with :meth:`from_env` or directly with arguments.

    ``url`` is None when capture is off. ``label`` None means ``primary`` or ``shadow``
    per request, as detection decided. ``redact`` holds normalized field names (see
    :func:`normalize_field`); ``headers`` lower-cased header names.
    """

    url: str | None = None
    label: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    headers: tuple[str, ...] = DEFAULT_HEADERS
    redact: frozenset[str] = DEFAULT_REDACT
    queue_size: int = DEFAULT_QUEUE_SIZE

    def __post_init__(self) -> None:
        if self.url is not None:
            if not isinstance(self.url, str):
                raise ConfigError(
                    f"url={self.url!r} is not valid: accepted values are {_URL_ACCEPTED}"
                )
            parse_url(self.url, "url")
        check_label("label", self.label)
        size = self.max_body_bytes
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ConfigError(
                f"max_body_bytes={size!r} is not valid: accepted values are whole numbers >= 0"
            )
        queue = self.queue_size
        if isinstance(queue, bool) or not isinstance(queue, int) or queue < 1:
            raise ConfigError(
                f"queue_size={queue!r} is not valid: accepted values are {_QUEUE_ACCEPTED}"
            )
        object.__setattr__(self, "headers", parse_headers("headers", self.headers))
        redact: object = self.redact
        if isinstance(redact, str):
            raise ConfigError(
                f"redact={redact!r} is not valid: accepted values are a collection of "
                "JSON field names"
            )
        object.__setattr__(self, "redact", parse_redact("redact", self.redact))

    @property
    def scheme(self) -> str | None:
        """``sqlite``, ``jsonl`` or ``kafka``, or None when capture is off."""
        return None if self.url is None else parse_url(self.url, "url")[0]

    @property
    def path(self) -> str | None:
        """The SQLite file, the JSON lines directory or ``HOST:PORT/TOPIC`` (with options) of
        a Kafka topic, or None when capture is off."""
        return None if self.url is None else parse_url(self.url, "url")[1]

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> CaptureSettings:
        """Settings from ``environ`` (default ``os.environ``); keyword arguments take precedence."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        raw_url = env.get(ENV_CAPTURE, "").strip()
        if raw_url:
            parse_url(raw_url)
            values["url"] = raw_url
        label = env.get(ENV_CAPTURE_LABEL, "").strip()
        if label:
            check_label(ENV_CAPTURE_LABEL, label)
            values["label"] = label
        if ENV_CAPTURE_MAX_BODY in env:
            values["max_body_bytes"] = parse_size(ENV_CAPTURE_MAX_BODY, env[ENV_CAPTURE_MAX_BODY])
        if ENV_CAPTURE_HEADERS in env:
            values["headers"] = parse_headers(ENV_CAPTURE_HEADERS, env[ENV_CAPTURE_HEADERS])
        if ENV_CAPTURE_REDACT in env:
            values["redact"] = parse_redact(ENV_CAPTURE_REDACT, env[ENV_CAPTURE_REDACT])
        if ENV_CAPTURE_QUEUE in env:
            values["queue_size"] = parse_queue(ENV_CAPTURE_QUEUE, env[ENV_CAPTURE_QUEUE])
        return with_overrides(cls, values, overrides, "capture setting")

    def replace(self, **changes: Any) -> CaptureSettings:
        """A copy with ``changes`` applied (validated like the constructor)."""
        return replace(self, **changes)
