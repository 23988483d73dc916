"""``shadowguard doctor``: settings, integrations, and side-effect libraries left unguarded."""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from shadowguard import _config, integrations
from shadowguard._patching import active_patch_sets
from shadowguard.errors import ConfigError

__all__ = ["Report", "diagnose", "render"]


@dataclass(frozen=True)
class Library:
    """A side-effect library shadowguard may not guard, and what to do about it."""

    module: str
    does: str
    remedy: str
    guarded_by: tuple[str, ...] = ()


# Libraries whose calls leave the process. guarded_by names the integrations that cover them.
_OTHER_KAFKA_CLIENT = "wrap producer.send in @shadowguard.side_effect, or use confluent-kafka"
LIBRARIES: tuple[Library, ...] = (
    Library("sqlalchemy", "database writes", "shadowguard.install('sqlalchemy')", ("sqlalchemy",)),
    Library(
        "confluent_kafka",
        "Kafka produces",
        "shadowguard.install('confluent_kafka')",
        ("confluent_kafka",),
    ),
    Library("httpx", "outbound HTTP", "shadowguard.install('httpx')", ("httpx",)),
    Library("httpx2", "outbound HTTP", "shadowguard.install('httpx2')", ("httpx2", "httpx")),
    Library("requests", "outbound HTTP", "shadowguard.install('requests')", ("requests",)),
    Library(
        "urllib3",
        "outbound HTTP",
        "shadowguard.install('requests') (it guards urllib3 too)",
        ("requests",),
    ),
    Library("smtplib", "e-mail", "shadowguard.install('smtplib')", ("smtplib",)),
    Library(
        "django.db",
        "database writes (Django ORM)",
        "add shadowguard.middleware.django.ShadowGuardMiddleware to MIDDLEWARE",
        ("django",),
    ),
    Library(
        "boto3",
        "AWS calls (S3 puts, SQS/SNS sends, DynamoDB writes)",
        "wrap the calls in @shadowguard.side_effect, or give the shadow read-only IAM credentials",
    ),
    Library(
        "botocore",
        "AWS calls",
        "wrap the calls in @shadowguard.side_effect, or give the shadow read-only IAM credentials",
    ),
    Library(
        "redis",
        "Redis writes and pub/sub",
        "point the shadow at its own Redis, or wrap writers in @shadowguard.side_effect",
    ),
    Library(
        "celery",
        "task enqueueing (task.delay)",
        "wrap the code that enqueues in @shadowguard.side_effect",
    ),
    Library(
        "aiohttp",
        "outbound HTTP",
        "wrap the calls in @shadowguard.side_effect, or use httpx with shadowguard.install('httpx')",
    ),
    Library("kafka", "Kafka produces (kafka-python)", _OTHER_KAFKA_CLIENT),
    Library("aiokafka", "Kafka produces", _OTHER_KAFKA_CLIENT),
    Library("pika", "RabbitMQ publishes", "wrap basic_publish in @shadowguard.side_effect"),
    Library("aio_pika", "RabbitMQ publishes", "wrap publish in @shadowguard.side_effect"),
    Library("pymongo", "MongoDB writes", "point the shadow at a read-only MongoDB user"),
    Library(
        "psycopg2",
        "raw PostgreSQL access",
        "go through SQLAlchemy with shadowguard.install('sqlalchemy'), or use a read-only database role",
    ),
    Library("stripe", "payments", "wrap charges in @shadowguard.side_effect(returns=...)"),
    Library("twilio", "SMS and calls", "wrap sends in @shadowguard.side_effect"),
    Library("sendgrid", "e-mail", "wrap sends in @shadowguard.side_effect"),
    Library("paho", "MQTT publishes", "wrap publish in @shadowguard.side_effect"),
    Library("nats", "NATS publishes", "wrap publish in @shadowguard.side_effect"),
)


@dataclass
class Report:
    """What ``doctor`` found."""

    settings: dict[str, Any] | None
    config_error: str | None
    integrations: dict[str, dict[str, Any]] = field(default_factory=dict)
    unguarded: list[dict[str, str]] = field(default_factory=list)
    guarded: list[str] = field(default_factory=list)
    app: str | None = None
    app_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.config_error is None and self.app_error is None and not self.unguarded


def _load_app(spec: str) -> None:
    module, _, attribute = spec.partition(":")
    loaded = importlib.import_module(module)
    if attribute:
        obj: Any = loaded
        for part in attribute.split("."):
            obj = getattr(obj, part)


def _active_integrations() -> set[str]:
    import shadowguard

    return set(shadowguard.installed()) | set(active_patch_sets())


def diagnose(app: str | None = None) -> Report:
    """Resolve settings, import ``app`` (``module[:attribute]``) if given, and look for gaps."""
    report = Report(settings=None, config_error=None, app=app)
    try:
        settings = _config.get_settings()
        report.settings = {
            k: (sorted(v) if isinstance(v, frozenset) else v) for k, v in asdict(settings).items()
        }
        if settings.marker_secret:
            report.settings["marker_secret"] = "***"
    except ConfigError as exc:
        report.config_error = str(exc)
    if app:
        if "" not in sys.path and "." not in sys.path:
            sys.path.insert(0, "")
        try:
            _load_app(app)
        except Exception as exc:
            report.app_error = f"could not import {app}: {type(exc).__name__}: {exc}"
    active = _active_integrations()
    for name, integration in integrations.INTEGRATIONS.items():
        report.integrations[name] = {
            "library": integration.requires,
            "available": integration.available(),
            "active": name in active,
            "extra": integration.extra,
        }
    for library in LIBRARIES:
        if library.module not in sys.modules:
            continue
        if any(g in active for g in library.guarded_by):
            report.guarded.append(library.module)
            continue
        report.unguarded.append(
            {"module": library.module, "does": library.does, "remedy": library.remedy}
        )
    return report


def render(report: Report, *, as_json: bool = False) -> str:
    """The report as text (or JSON)."""
    if as_json:
        return json.dumps(asdict(report) | {"ok": report.ok}, indent=2, default=str)
    lines = ["shadowguard doctor", ""]
    if report.config_error:
        lines.append(f"settings: ERROR {report.config_error}")
    else:
        lines.append("settings:")
        lines += [f"  {k} = {v!r}" for k, v in (report.settings or {}).items()]
    if report.app:
        lines.append(
            f"application: {report.app}"
            + (f"  ERROR {report.app_error}" if report.app_error else "")
        )
    lines.append("integrations:")
    for name, info in report.integrations.items():
        state = (
            "active"
            if info["active"]
            else (
                "available, not installed"
                if info["available"]
                else f"missing (pip install 'shadowguard[{info['extra']}]')"
            )
        )
        lines.append(f"  {name:<16} {state}")
    if report.guarded:
        lines.append(f"guarded libraries in use: {', '.join(report.guarded)}")
    if report.unguarded:
        lines.append("UNGUARDED side-effect libraries imported:")
        for item in report.unguarded:
            lines.append(f"  {item['module']:<16} {item['does']}: {item['remedy']}")
    lines.append("")
    lines.append("ok: nothing unguarded found" if report.ok else "not ok: see above")
    return "\n".join(lines)
