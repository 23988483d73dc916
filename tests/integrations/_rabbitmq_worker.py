"""A RabbitMQ worker as an application deploys it, run with ``SHADOW_MODE=true`` by the tests.

``python -m tests.integrations._rabbitmq_worker HOST PORT QUEUE OUT COUNT``: installs
shadowguard, tries the primary's ``QUEUE`` (refused in shadow), then consumes
``QUEUE-shadow`` until ``COUNT`` messages arrived; each handler publishes to ``OUT`` and
acks. Prints what it saw as JSON on stdout.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import shadowguard


def main(host: str, port: int, queue: str, out: str, count: int) -> None:
    shadowguard.install("pika")
    import pika

    connection = pika.BlockingConnection(pika.ConnectionParameters(host, port))
    channel = connection.channel()
    report: dict[str, Any] = {"seen": [], "refused": None}
    try:
        channel.basic_get(queue)
    except shadowguard.ShadowSideEffectBlocked as exc:
        report["refused"] = str(exc)

    def handle(ch: Any, method: Any, properties: Any, body: bytes) -> None:
        report["seen"].append([body.decode(), shadowguard.is_shadow()])
        ch.basic_publish("", out, b"handled " + body)
        ch.basic_ack(method.delivery_tag)
        if len(report["seen"]) == count:
            ch.stop_consuming()

    channel.basic_consume(f"{queue}-shadow", handle)
    channel.start_consuming()
    connection.close()
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]))
