"""doctor and RabbitMQ: pika and aio-pika are guarded once their integrations are installed."""

from __future__ import annotations

from pathlib import Path

from tests._cli import json_report
from tests.doctor._run import doctor, subjects, write
from tests.peers.rabbitmq import RabbitPeer

PIKA_APP = """\
import pika
from shadowguard.middleware.wsgi import ShadowGuardMiddleware
import shadowguard

broker = pika.BlockingConnection(pika.ConnectionParameters({host!r}, {port}))
channel = broker.channel()
{install}

def inner(environ, start_response):
    channel.basic_publish("", "orders", b"o-1")

app = ShadowGuardMiddleware(inner)
"""

AIO_PIKA_APP = """\
import aio_pika
from shadowguard.middleware.asgi import ShadowGuardMiddleware
import shadowguard
{install}

async def inner(scope, receive, send):
    connection = await aio_pika.connect_robust("amqp://127.0.0.1/")
    channel = await connection.channel()
    await channel.default_exchange.publish(aio_pika.Message(b"o-1"), routing_key="orders")

app = ShadowGuardMiddleware(inner)
"""


def test_a_pika_connection_without_its_integration_is_unguarded(
    tmp_path: Path, rabbit: RabbitPeer
) -> None:
    write(tmp_path, "svc.py", PIKA_APP.format(host=rabbit.host, port=rabbit.port, install=""))
    result = doctor(tmp_path, "svc:app", "--json")
    data = json_report(result)
    assert result.returncode == 1
    assert sorted(set(subjects(data))) == ["pika", "pika channel", "pika connection"]
    channel = next(f for f in data["unguarded"] if f["subject"] == "pika channel")
    assert "shadowguard.install('pika')" in channel["remedy"]


def test_a_pika_connection_made_before_install_is_guarded(
    tmp_path: Path, rabbit: RabbitPeer
) -> None:
    app = PIKA_APP.format(host=rabbit.host, port=rabbit.port, install="shadowguard.install('pika')")
    write(tmp_path, "svc.py", app)
    result = doctor(tmp_path, "svc:app", "--json")
    data = json_report(result)
    assert result.returncode == 0, data["unguarded"]
    assert data["guarded"] == {"pika": "by the pika integration"}
    assert {(c["name"], c["guarded"]) for c in data["live_clients"]} >= {
        ("svc.broker", True),
        ("svc.channel", True),
    }


def test_aio_pika_is_unguarded_without_its_integration_and_guarded_with_it(
    tmp_path: Path,
) -> None:
    write(tmp_path, "svc.py", AIO_PIKA_APP.format(install=""))
    result = doctor(tmp_path, "svc:app", "--json")
    assert result.returncode == 1
    assert subjects(json_report(result)) == ["aio_pika"]
    write(tmp_path, "svc.py", AIO_PIKA_APP.format(install="shadowguard.install('aio_pika')"))
    result = doctor(tmp_path, "svc:app", "--json")
    data = json_report(result)
    assert result.returncode == 0, data["unguarded"]
    assert data["guarded"] == {"aio_pika": "by the aio_pika integration"}
