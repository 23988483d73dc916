"""Workers in shadow: consume only the shadow's own queues.

A worker started in a ``SHADOW_MODE`` process beside the primary's workers, with the same
configuration, would take tasks off the primary's queues: every task it ran as shadow
would be one the primary never runs. ``WorkController.start`` (``celery worker``,
``app.Worker(...).start()``) refuses in shadow before connecting, unless every queue it
consumes from is one of the shadow's own (``install(shadow_queues=[...])``: a mirror
queue, bound to a fanout exchange the primary's tasks also go to). Adding a queue at run
time (``add_consumer``) is held to the same rule, and ``Control.purge()`` is refused.
A task run by an allowed shadow worker runs as shadow: the process is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from shadowguard.contract import PROCESS, Kind, mark_wrapped, refuse, scope_now

__all__ = ["add_queue_hook", "purge_hook", "set_shadow_queues", "start_hook"]

_shadow_queues: frozenset[str] = frozenset()

REMEDY = (
    "Give the shadow worker a queue of its own that receives a copy of every task: declare "
    "the primary's task exchange as a fanout exchange bound to the primary's queue and to a "
    "mirror queue (e.g. 'celery.shadow'), start the shadow worker with -Q celery.shadow, and "
    "name that queue in shadowguard.install(celery={'shadow_queues': ['celery.shadow']})"
)


def set_shadow_queues(names: frozenset[str]) -> None:
    """The queues a worker may consume from in shadow (empty: none)."""
    global _shadow_queues
    _shadow_queues = names


def _check(queues: Iterable[str], app: Any, what: str) -> None:
    primary = sorted(set(queues) - _shadow_queues)
    if not primary:
        return
    try:
        broker = str(app.connection_for_read().as_uri())
    except Exception:  # the refusal matters, not the URL
        broker = "?"
    raise refuse(
        Kind.CELERY_CONSUME,
        broker,
        "consume",
        f"{what} would consume from the queue(s) {', '.join(primary)}, taking tasks off "
        "the primary's workers",
        remedy=REMEDY,
        detail={"queues": tuple(primary)},
    )


def start_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    def start(self: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self)
        _check(self.app.amqp.queues.consume_from, self.app, "a Celery worker in shadow")
        return original(self)

    mark_wrapped(start, original)
    return start


def add_queue_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    def add_task_queue(self: Any, queue: Any, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, queue, *args, **kwargs)
        name = getattr(queue, "name", queue)
        _check([str(name)], self.app, "adding a queue to a Celery worker in shadow")
        return original(self, queue, *args, **kwargs)

    mark_wrapped(add_task_queue, original)
    return add_task_queue


def purge_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    def purge(self: Any, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, *args, **kwargs)
        raise refuse(
            Kind.CELERY_CONSUME,
            "?",
            "purge",
            "Control.purge() in shadow would delete the primary's waiting tasks",
            remedy="purge from a primary process, or skip it where shadowguard.is_shadow()",
            detail={"queues": ()},
        )

    mark_wrapped(purge, original)
    return purge
