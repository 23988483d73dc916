"""Sinks: one module per side-effect channel, each with ``install()`` and ``uninstall()``.

This module knows which integrations exist, which library each one guards and which
extra installs it. It imports none of them until asked.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from types import ModuleType

from shadowguard.errors import missing_extra_error

__all__ = ["INTEGRATIONS", "Integration", "load"]


@dataclass(frozen=True)
class Integration:
    """An integration: its shadowguard module, the library it needs, and the extra for it."""

    name: str
    module: str
    requires: str
    extra: str

    def available(self) -> bool:
        """Is the guarded library importable here?"""
        try:
            return importlib.util.find_spec(self.requires) is not None
        except (ImportError, ValueError):
            return False


_KNOWN: tuple[Integration, ...] = (
    # One line per integration, in install order.
    Integration("sqlalchemy", "shadowguard.integrations.sqlalchemy", "sqlalchemy", "sqlalchemy"),
    Integration(
        "confluent_kafka", "shadowguard.integrations.confluent_kafka", "confluent_kafka", "kafka"
    ),
    Integration("httpx", "shadowguard.integrations.httpx", "httpx", "httpx"),
    Integration("httpx2", "shadowguard.integrations.httpx2", "httpx2", "httpx2"),
    Integration("requests", "shadowguard.integrations.requests", "urllib3", "requests"),
    Integration("http_client", "shadowguard.integrations.http_client", "http.client", ""),  # stdlib
    Integration("aiohttp", "shadowguard.integrations.aiohttp", "aiohttp", "aiohttp"),
    Integration("smtplib", "shadowguard.integrations.smtplib", "smtplib", ""),  # stdlib: no extra
    Integration("django", "shadowguard.integrations.django", "django", "django"),
    Integration("redis", "shadowguard.integrations.redis", "redis", "redis"),
    Integration("celery", "shadowguard.integrations.celery", "celery", "celery"),
    Integration("boto3", "shadowguard.integrations.boto3", "botocore", "boto3"),
    Integration("pika", "shadowguard.integrations.pika", "pika", "pika"),
    Integration("aio_pika", "shadowguard.integrations.aio_pika", "aio_pika", "aio-pika"),
    Integration("grpc", "shadowguard.integrations.grpc", "grpc", "grpcio"),
    Integration("aiosmtplib", "shadowguard.integrations.aiosmtplib", "aiosmtplib", "aiosmtplib"),
    Integration("kafka_python", "shadowguard.integrations.kafka_python", "kafka", "kafka-python"),
    Integration("aiokafka", "shadowguard.integrations.aiokafka", "aiokafka", "aiokafka"),
)
INTEGRATIONS: dict[str, Integration] = {i.name: i for i in _KNOWN}


def load(name: str) -> ModuleType:
    """Import the integration module ``name``, or raise ImportError naming its extra."""
    try:
        integration = INTEGRATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown integration {name!r}: accepted values are {', '.join(INTEGRATIONS) or 'none yet'}"
        ) from None
    if not integration.available():
        raise missing_extra_error(integration.requires, integration.extra)
    return importlib.import_module(integration.module)
