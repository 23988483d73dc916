"""The side-effect libraries doctor knows: what each does, what guards it, what to do."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LIBRARIES", "Library", "library_of"]


@dataclass(frozen=True)
class Library:
    """A module whose calls leave the process, and what covers it.

    ``guarded_by`` names the integrations that guard it; with none, shadowguard cannot see
    its calls and only ``@side_effect`` around them keeps a shadow request from acting.
    ``raw`` marks a transport other libraries use (``http.client``, database drivers):
    it counts only when the application's own code imports it, since every HTTP client or
    ORM loads it too.
    """

    module: str
    does: str
    remedy: str
    guarded_by: tuple[str, ...] = ()
    raw: bool = False


_SIDE_EFFECT = "wrap the calls in @shadowguard.side_effect"
_STDLIB_HTTP = "shadowguard.install('http_client')"
_RAW_DB = (
    f"{_SIDE_EFFECT}, go through SQLAlchemy with shadowguard.install('sqlalchemy'), "
    "or give the shadow a read-only database role"
)
_AWS = f"{_SIDE_EFFECT}, or give the shadow read-only IAM credentials"

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
        ("requests", "http_client"),
    ),
    Library("smtplib", "e-mail", "shadowguard.install('smtplib')", ("smtplib",)),
    Library(
        "django.db",
        "database writes (Django ORM)",
        "shadowguard.install('django') and shadowguard.middleware.django.ShadowGuardMiddleware "
        "first in MIDDLEWARE",
        ("django",),
    ),
    Library("urllib.request", "outbound HTTP (urllib)", _STDLIB_HTTP, ("http_client",), raw=True),
    Library("http.client", "outbound HTTP (http.client)", _STDLIB_HTTP, ("http_client",), raw=True),
    Library("redis", "Redis writes and pub/sub", "shadowguard.install('redis')", ("redis",)),
    Library("grpc", "gRPC calls", "shadowguard.install('grpc')", ("grpc",)),
    Library("aiosmtplib", "e-mail", "shadowguard.install('aiosmtplib')", ("aiosmtplib",)),
    Library("sqlite3", "raw SQLite writes", _RAW_DB, raw=True),
    Library("psycopg", "raw PostgreSQL access", _RAW_DB, raw=True),
    Library("psycopg2", "raw PostgreSQL access", _RAW_DB, raw=True),
    Library("asyncpg", "raw PostgreSQL access", _RAW_DB, raw=True),
    Library("pymysql", "raw MySQL access", _RAW_DB, raw=True),
    Library("MySQLdb", "raw MySQL access", _RAW_DB, raw=True),
    Library(
        "boto3",
        "AWS calls (S3 puts, SQS/SNS sends, DynamoDB writes)",
        "shadowguard.install('boto3')",
        ("boto3",),
    ),
    Library("botocore", "AWS calls", "shadowguard.install('boto3')", ("boto3",)),
    Library("aiobotocore", "AWS calls (asyncio)", _AWS),
    Library(
        "celery",
        "task enqueueing (task.delay) and workers",
        "shadowguard.install('celery')",
        ("celery",),
    ),
    Library(
        "kombu",
        "message publishes (kombu)",
        "shadowguard.install('celery') (it guards kombu's Producer.publish)",
        ("celery",),
        raw=True,  # Celery loads it: it counts when the application publishes with kombu itself
    ),
    Library("aiohttp", "outbound HTTP", "shadowguard.install('aiohttp')", ("aiohttp",)),
    Library(
        "kafka",
        "Kafka produces (kafka-python)",
        "shadowguard.install('kafka_python')",
        ("kafka_python",),
    ),
    Library("aiokafka", "Kafka produces", "shadowguard.install('aiokafka')", ("aiokafka",)),
    Library(
        "pika", "RabbitMQ publishes, acks and consumers", "shadowguard.install('pika')", ("pika",)
    ),
    Library(
        "aio_pika",
        "RabbitMQ publishes, acks and consumers",
        "shadowguard.install('aio_pika')",
        ("aio_pika",),
    ),
    Library(
        "aiormq",
        "RabbitMQ publishes, acks and consumers",
        "shadowguard.install('aio_pika') (it guards aiormq's channel)",
        ("aio_pika",),
    ),
    Library(
        "pymongo",
        "MongoDB writes",
        f"point the shadow at a read-only MongoDB user, or {_SIDE_EFFECT}",
    ),
    Library("stripe", "payments", "wrap charges in @shadowguard.side_effect(returns=...)"),
    Library("twilio", "SMS and calls", f"{_SIDE_EFFECT} (the sends)"),
    Library("sendgrid", "e-mail", f"{_SIDE_EFFECT} (the sends)"),
    Library("paho", "MQTT publishes", f"{_SIDE_EFFECT} (publish)"),
    Library("nats", "NATS publishes", f"{_SIDE_EFFECT} (publish)"),
)
_BY_MODULE = {library.module: library for library in LIBRARIES}


def library_of(dotted: str) -> Library | None:
    """The library a dotted name (``urllib.request.urlopen``) belongs to, the most specific first."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        library = _BY_MODULE.get(".".join(parts[:end]))
        if library is not None:
            return library
    return None
