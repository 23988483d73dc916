"""doctor and kafka-python/aiokafka: clients made at import are guarded once the integration is
installed; in a SHADOW_MODE process a consumer that kept the primary's group is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._cli import json_report
from tests.doctor._run import doctor, subjects, write

# Bare instances stand in for clients made at import (the real ones connect when made).
APP = """\
from kafka import KafkaConsumer, KafkaProducer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from shadowguard.middleware.wsgi import ShadowGuardMiddleware
import shadowguard

producer = KafkaProducer.__new__(KafkaProducer)
aio_producer = AIOKafkaProducer.__new__(AIOKafkaProducer)
consumer = KafkaConsumer.__new__(KafkaConsumer)
consumer.config = {{"group_id": "orders"}}
aio_consumer = AIOKafkaConsumer.__new__(AIOKafkaConsumer)
aio_consumer._group_id = "orders"
{install}

def inner(environ, start_response):
    producer.send("orders", b"1")

app = ShadowGuardMiddleware(inner)
"""
CLIENTS = [
    ("svc.producer", "kafka-python KafkaProducer"),
    ("svc.aio_producer", "aiokafka AIOKafkaProducer"),
    ("svc.consumer", "kafka-python KafkaConsumer"),
    ("svc.aio_consumer", "aiokafka AIOKafkaConsumer"),
]


def test_kafka_clients_without_their_integrations_are_unguarded(tmp_path: Path) -> None:
    write(tmp_path, "svc.py", APP.format(install=""))
    result = doctor(tmp_path, "svc:app", "--json")
    data = json_report(result)
    assert result.returncode == 1
    assert {"kafka", "aiokafka", *(kind for _, kind in CLIENTS)} <= set(subjects(data))
    producer = next(f for f in data["unguarded"] if f["subject"] == "kafka-python KafkaProducer")
    assert "shadowguard.install('kafka_python')" in producer["remedy"]


@pytest.mark.parametrize("mode", ["primary", "shadow"])
def test_kafka_clients_made_before_install_are_guarded(tmp_path: Path, mode: str) -> None:
    install = "shadowguard.install('kafka_python', 'aiokafka')"
    write(tmp_path, "svc.py", APP.format(install=install))
    env = {"SHADOW_MODE": "true"} if mode == "shadow" else {}
    data = json_report(doctor(tmp_path, "svc:app", "--json", **env))
    live = {(c["name"], c["kind"]): c["guarded"] for c in data["live_clients"]}
    # In a shadow process the consumers kept the primary's group: they refuse to consume.
    shadow = mode == "shadow"
    assert live == {
        ("svc.producer", "kafka-python KafkaProducer"): True,
        ("svc.aio_producer", "aiokafka AIOKafkaProducer"): True,
        ("svc.consumer", "kafka-python KafkaConsumer"): not shadow,
        ("svc.aio_consumer", "aiokafka AIOKafkaConsumer"): not shadow,
    }
    assert {"kafka", "aiokafka"} <= set(data["guarded"])
