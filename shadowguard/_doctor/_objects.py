"""Live clients the application holds, guarded or not: a scan of the garbage collector's objects.

A producer or client created before ``install()`` (at import time, as many services do)
may escape a guard that patches classes later. Each kind is told guarded or not by the
guard's own marks (:func:`shadowguard.contract.is_wrapped`): a swapped-in producer class,
a ``guard()`` proxy, a patched method seen from the instance; where the guard sits on a
class every instance shares (SQLAlchemy, Django, smtplib, gRPC), by the integration being installed.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from shadowguard.contract import PROCESS, is_wrapped, unwrapped

__all__ = ["LiveObject", "live_objects"]

_KAFKA_GUARD = (
    "create it after shadowguard.install(), or use "
    "producer = shadowguard.integrations.confluent_kafka.guard(producer, config=...)"
)


@dataclass(frozen=True)
class LiveObject:
    """One live client: what it is, where the application keeps it, and whether it is guarded."""

    kind: str
    name: str
    guarded: bool
    remedy: str


@dataclass(frozen=True)
class _Kind:
    label: str
    classes: tuple[tuple[str, str], ...]
    guarded: Callable[[Any, Collection[str], Mapping[int, Any]], bool]
    remedy: str


def _marked(attribute: str) -> Callable[[Any, Collection[str], Mapping[int, Any]], bool]:
    def guarded(obj: Any, active: Collection[str], proxied: Mapping[int, Any]) -> bool:
        try:
            return is_wrapped(getattr(obj, attribute, None))
        except Exception:
            return False

    return guarded


def _class_marked(
    module: str, name: str, attribute: str
) -> Callable[[Any, Collection[str], Mapping[int, Any]], bool]:
    """Guarded when ``module.name.attribute`` is a guard's wrapper (a patch on a class the
    object reaches through others: a connection's channels)."""

    def guarded(obj: Any, active: Collection[str], proxied: Mapping[int, Any]) -> bool:
        cls = getattr(sys.modules.get(module), name, None)
        return is_wrapped(vars(cls).get(attribute)) if isinstance(cls, type) else False

    return guarded


def _producer(obj: Any, active: Collection[str], proxied: Mapping[int, Any]) -> bool:
    return is_wrapped(type(obj)) or id(obj) in proxied


def _consumer(obj: Any, active: Collection[str], proxied: Mapping[int, Any]) -> bool:
    # Under install() every consumer is kept from the primary's group in shadow requests
    # (the guard is on the client's type); in a SHADOW_MODE process only one created from a
    # swapped-in class joined a group of its own: any other refuses to consume there.
    return "confluent_kafka" in active and (not PROCESS.shadow or is_wrapped(type(obj)))


def _python_consumer(group_of: Callable[[Any], Any]) -> Callable[..., bool]:
    def guarded(obj: Any, active: Collection[str], proxied: Mapping[int, Any]) -> bool:
        # The guard is on the class (a marked commit); in a SHADOW_MODE process a
        # consumer that kept the primary's group (made before install()) refuses to consume.
        if not is_wrapped(getattr(type(obj), "commit", None)):
            return False
        return (
            not PROCESS.shadow
            or getattr(obj, "_shadowguard_group", False) is True
            or group_of(obj) is None
        )

    return guarded


_PYTHON_CONSUMER_REMEDY = (
    "shadowguard.install('{name}') before creating it: created in a SHADOW_MODE process it "
    "then joins the shadow's own consumer group"
)


def _engine(obj: Any, active: Collection[str], proxied: Mapping[int, Any]) -> bool:
    return "sqlalchemy" in active or is_wrapped(getattr(type(obj.dialect), "do_execute", None))


def _session(obj: Any, active: Collection[str], proxied: Mapping[int, Any]) -> bool:
    return "sqlalchemy" in active


def _grpc_channel(obj: Any, active: Collection[str], proxied: Mapping[int, Any]) -> bool:
    return "grpc" in active


def _django_connection(obj: Any, active: Collection[str], proxied: Mapping[int, Any]) -> bool:
    wrappers = getattr(obj, "execute_wrappers", ())
    if any(getattr(w, "__module__", "").startswith("shadowguard.") for w in wrappers):
        return True
    # Not connected yet: the guard joins when it connects (connection_created).
    return "django" in active and getattr(obj, "connection", None) is None


def _celery_app(obj: Any, active: Collection[str], proxied: Mapping[int, Any]) -> bool:
    return "celery" in active  # the guard is on kombu's Producer, which every app uses


_KINDS: tuple[_Kind, ...] = (
    _Kind(
        "confluent_kafka Producer",
        (("confluent_kafka.cimpl", "Producer"), ("confluent_kafka.aio.producer", "AIOProducer")),
        _producer,
        _KAFKA_GUARD,
    ),
    _Kind(
        "confluent_kafka Consumer",
        (("confluent_kafka.cimpl", "Consumer"),),
        _consumer,
        "call shadowguard.install() before creating it, through confluent_kafka.Consumer "
        "(or DeserializingConsumer, confluent_kafka.aio.AIOConsumer): created in a "
        "SHADOW_MODE process it then joins the shadow's own consumer group",
    ),
    _Kind(
        "kafka-python KafkaProducer",
        (("kafka.producer.kafka", "KafkaProducer"),),
        _marked("send"),
        "shadowguard.install('kafka_python') (it guards producers made before it too)",
    ),
    _Kind(
        "kafka-python KafkaConsumer",
        (("kafka.consumer.group", "KafkaConsumer"),),
        _python_consumer(lambda obj: obj.config.get("group_id")),
        _PYTHON_CONSUMER_REMEDY.format(name="kafka_python"),
    ),
    _Kind(
        "aiokafka AIOKafkaProducer",
        (("aiokafka.producer.producer", "AIOKafkaProducer"),),
        _marked("send"),
        "shadowguard.install('aiokafka') (it guards producers made before it too)",
    ),
    _Kind(
        "aiokafka AIOKafkaConsumer",
        (("aiokafka.consumer.consumer", "AIOKafkaConsumer"),),
        _python_consumer(lambda obj: obj._group_id),
        _PYTHON_CONSUMER_REMEDY.format(name="aiokafka"),
    ),
    _Kind(
        "httpx client",
        (("httpx", "Client"), ("httpx", "AsyncClient")),
        _marked("_transport_for_url"),
        "shadowguard.install('httpx'), or shadowguard.integrations.httpx.guard(client)",
    ),
    _Kind(
        "httpx2 client",
        (("httpx2", "Client"), ("httpx2", "AsyncClient")),
        _marked("_transport_for_url"),
        "shadowguard.install('httpx2'), or shadowguard.integrations.httpx2.guard(client)",
    ),
    _Kind(
        "requests Session",
        (("requests", "Session"),),
        _marked("get_adapter"),
        "shadowguard.install('requests'), or shadowguard.integrations.requests.guard(session)",
    ),
    _Kind(
        "aiohttp ClientSession",
        (("aiohttp.client", "ClientSession"),),
        _marked("_request"),
        "shadowguard.install('aiohttp') (it guards sessions made before it too)",
    ),
    _Kind(
        "SQLAlchemy Engine",
        (("sqlalchemy.engine", "Engine"),),
        _engine,
        "shadowguard.install('sqlalchemy')",
    ),
    _Kind(
        "SQLAlchemy Session",
        (("sqlalchemy.orm", "Session"),),
        _session,
        "shadowguard.install('sqlalchemy')",
    ),
    _Kind(
        "Django database connection",
        (("django.db.backends.base.base", "BaseDatabaseWrapper"),),
        _django_connection,
        "shadowguard.install('django') (it guards connections opened before it too)",
    ),
    _Kind(
        "smtplib SMTP",
        (("smtplib", "SMTP"),),
        _marked("sendmail"),
        "shadowguard.install('smtplib')",
    ),
    _Kind(
        "aiosmtplib SMTP",
        (("aiosmtplib.smtp", "SMTP"),),
        _marked("sendmail"),
        "shadowguard.install('aiosmtplib')",
    ),
    _Kind(
        "gRPC channel",
        (("grpc._channel", "Channel"), ("grpc.aio._channel", "Channel")),
        _grpc_channel,
        "shadowguard.install('grpc') (it guards channels and stubs made before it too)",
    ),
    _Kind(
        "redis client",
        (("redis.client", "Redis"), ("redis.asyncio.client", "Redis")),
        _marked("_send_command_parse_response"),
        "shadowguard.install('redis') (it guards clients created before it too)",
    ),
    _Kind(
        "Celery app",
        (("celery.app.base", "Celery"),),
        _celery_app,
        "shadowguard.install('celery') (it guards apps created before it too)",
    ),
    _Kind(
        "botocore client",
        (("botocore.client", "BaseClient"),),
        _marked("_make_request"),
        "shadowguard.install('boto3') (it guards clients created before it too); an "
        "aiobotocore client is not guarded: wrap its calls in @shadowguard.side_effect",
    ),
    _Kind(
        "pika channel",
        (("pika.channel", "Channel"), ("pika.adapters.blocking_connection", "BlockingChannel")),
        _marked("basic_publish"),
        "shadowguard.install('pika') (it guards channels created before it too)",
    ),
    _Kind(
        "pika connection",
        (
            ("pika.connection", "Connection"),
            ("pika.adapters.blocking_connection", "BlockingConnection"),
        ),
        _class_marked("pika.channel", "Channel", "basic_publish"),
        "shadowguard.install('pika') (it guards connections created before it too)",
    ),
    _Kind(
        "aio-pika channel",
        (("aiormq.channel", "Channel"), ("aio_pika.channel", "Channel")),
        _class_marked("aiormq.channel", "Channel", "basic_publish"),
        "shadowguard.install('aio_pika') (it guards channels created before it too)",
    ),
    _Kind(
        "redis cluster client",
        (("redis.cluster", "RedisCluster"), ("redis.asyncio.cluster", "RedisCluster")),
        lambda obj, active, proxied: False,  # the redis integration does not reach it
        "the redis integration does not guard RedisCluster: point the shadow at a cluster of "
        "its own, or wrap the writes in @shadowguard.side_effect",
    ),
)


def _classes(kind: _Kind) -> tuple[type, ...]:
    found = []
    for module_name, name in kind.classes:
        module = sys.modules.get(module_name)
        # The original class, also after install() swapped a guarded one in its place.
        cls = unwrapped(getattr(module, name, None)) if module is not None else None
        if isinstance(cls, type):
            found.append(cls)
    return tuple(found)


def _module_of(cls: type) -> str:
    module = vars(cls).get("__module__") if hasattr(cls, "__dict__") else None
    return module if isinstance(module, str) else ""


def _proxied(objects: Iterable[Any]) -> dict[int, Any]:
    """What shadowguard's own objects (guard() proxies, guarded producers) hold, by id: the holder."""
    inner: dict[int, Any] = {}
    for obj in objects:
        if not _module_of(type(obj)).startswith("shadowguard.integrations"):
            continue
        wrapped = getattr(obj, "__wrapped__", None)
        level = [obj] if wrapped is None else [obj, wrapped]
        # Two levels down: a guarded asyncio producer holds its Producer in its __dict__.
        for _ in range(2):
            level = [r for o in level for r in gc.get_referents(o)]
            inner.update((id(r), obj) for r in level)
        if wrapped is not None:
            inner[id(wrapped)] = obj
    return inner


def _names(modules: Iterable[ModuleType]) -> dict[int, str]:
    names: dict[int, str] = {}
    for module in modules:
        for attribute, value in list(vars(module).items()):
            if not attribute.startswith("__"):
                names.setdefault(id(value), f"{module.__name__}.{attribute}")
    return names


def live_objects(active: Collection[str], own_modules: Iterable[ModuleType]) -> list[LiveObject]:
    """Every live client of a known kind, named by the module global that holds it if any."""
    kinds = [(kind, _classes(kind)) for kind in _KINDS]
    kinds = [(kind, classes) for kind, classes in kinds if classes]
    if not kinds:
        return []
    objects = gc.get_objects()
    proxied = _proxied(objects)
    names = _names(own_modules)
    found: list[LiveObject] = []
    by_type: dict[type, _Kind | None] = {}
    for obj in objects:
        cls = type(obj)
        if cls not in by_type:
            try:
                by_type[cls] = next((k for k, c in kinds if issubclass(cls, c)), None)
            except Exception:  # a metaclass of the application's own refusing the check
                by_type[cls] = None
        kind = by_type[cls]
        if kind is None:
            continue
        try:
            guarded = kind.guarded(obj, active, proxied)
        except Exception:
            guarded = False
        name = names.get(id(obj), "")
        if not name and id(obj) in proxied:
            name = names.get(id(proxied[id(obj)]), "")
        if not name:
            name = f"a {cls.__module__}.{cls.__qualname__} held elsewhere"
        if kind.label == "SQLAlchemy Engine":
            name += f" ({getattr(obj, 'url', '?')!r})"  # the URL's repr hides the password
        found.append(LiveObject(kind.label, name, guarded, "" if guarded else kind.remedy))
    return found
