"""The celery guard on the primary path: ``apply_async`` to kombu's in-memory broker.

The guard patches kombu's ``Producer.publish`` on the class, so the unguarded side runs
with the integration uninstalled and the guarded side with it installed (the harness swaps
them before each sample). The in-memory broker keeps the broker's own time out of the
figure, so the ratio is the guard's share of Celery's whole send path (routing, message
creation, serialization, publish). A suppressed shadow ``apply_async`` is timed against
the primary one, to show what shadow traffic costs instead.
"""

from __future__ import annotations

from typing import Any

from benchmarks._harness import Harness
from shadowguard import shadow


def run(h: Harness) -> None:
    if not h.imports(
        "celery", "kombu", missing="celery is not installed: pip install 'shadowguard[celery]'"
    ):
        return
    from celery import Celery
    from kombu.transport.memory import Channel

    from shadowguard.integrations import celery as sink

    queue = "shadowguard-bench"
    app = Celery("bench", broker="memory://", set_as_current=False)
    app.conf.update(task_default_queue=queue, task_ignore_result=True)

    @app.task(name="bench.add", shared=False)
    def add(x: int, y: int) -> int:
        return x + y

    def drained(install: bool) -> None:
        (sink.install if install else sink.uninstall)()
        Channel.queues.pop(queue, None)

    add.apply_async((1, 2))  # warm the producer pool and the routes
    try:
        h.compare(
            "celery apply_async to the memory broker, primary: guarded vs unguarded",
            lambda: add.apply_async((1, 2)),
            lambda: add.apply_async((1, 2)),
            target_ratio=1.03,
            before_baseline=lambda: drained(False),
            before_guarded=lambda: drained(True),
        )

        def suppressed() -> Any:
            with shadow("bench"):
                return add.apply_async((1, 2))

        h.compare(
            "celery: shadow suppressed apply_async vs real primary apply_async",
            lambda: add.apply_async((1, 2)),
            suppressed,
            before_baseline=lambda: drained(True),
            before_guarded=lambda: drained(True),
        )
    finally:
        sink.uninstall()
        Channel.queues.pop(queue, None)
