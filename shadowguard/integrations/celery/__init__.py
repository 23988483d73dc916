"""Celery: in shadow, tasks are serialized and recorded, never sent; workers keep off the
primary's queues.

``install()`` patches classes, so apps, producers and results created before it are
covered too (there is no per-object ``guard()``):

- ``kombu.Producer.publish``, which every Celery message goes through (``apply_async``,
  ``delay``, ``send_task``, chains, groups, chords, events, remote control): in shadow the
  message is serialized with the app's serializer and recorded
  (``Suppression(kind="celery.task")`` naming the task, arguments redacted; other messages
  as ``celery.message``); nothing is declared, connected or published.
- The result backends' ``on_task_call`` and ``apply_chord``: nothing prepared for a result
  that never comes, no chord state stored.
- ``AsyncResult`` and ``ResultSet``: a suppressed task's result is ``PENDING``; ``get()``
  raises ``ShadowTaskResultUnavailable`` (a ``celery.exceptions.TimeoutError``) at once.
- ``WorkController.start``, ``Consumer.add_task_queue`` and ``Control.purge``: in shadow
  (a ``SHADOW_MODE`` worker) a worker refuses to consume any queue but the shadow's own
  (``shadow_queues``), and purging is refused.

The package, in the order a shadow ``apply_async`` meets it:

- ``_backend``: ``on_task_call`` and ``apply_chord`` as shadow no-ops.
- ``_publish``: the message serialized, recorded, its ids remembered.
- ``_results``: the ids of suppressed tasks, and their results' answers.
- ``_worker``: shadow workers consume only the shadow's own queues.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shadowguard.contract import Patches, class_method, missing_extra_error, names_option

try:
    import celery
    import celery.app.control
    import celery.backends.base
    import celery.backends.redis
    import celery.backends.rpc
    import celery.result
    import celery.worker.consumer.consumer
    import celery.worker.worker
    import kombu.messaging
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise missing_extra_error("celery", "celery") from exc

from shadowguard.integrations.celery import _backend, _publish, _results, _worker
from shadowguard.integrations.celery._results import ShadowTaskResultUnavailable

__all__ = ["ShadowTaskResultUnavailable", "install", "uninstall"]

_patches = Patches("celery")
#: Backends whose own methods prepare for a result or store chord state.
_BACKENDS = (
    celery.backends.base.Backend,
    celery.backends.redis.RedisBackend,
    celery.backends.rpc.RPCBackend,
)


def install(**options: Any) -> None:
    """Guard every Celery app, producer, result and worker; idempotent.

    ``shadow_queues``: queues of the shadow's own (mirror queues that get a copy of the
    primary's tasks); a worker in a ``SHADOW_MODE`` process may consume from these and no
    others. Apps and results created before ``install()`` are covered too (the patches
    are on the classes); :func:`uninstall` restores them.
    """
    _patches.install(_apply, options)


def uninstall() -> None:
    """Restore Celery's and kombu's classes and forget the suppressed task ids."""
    _patches.uninstall(after=_forget)


def _apply(*, shadow_queues: Iterable[str] = ()) -> None:
    _worker.set_shadow_queues(names_option("celery", "shadow_queues", shadow_queues, "queue names"))
    producer = kombu.messaging.Producer
    _patches.setattr(producer, "publish", _publish.publish_hook(_original(producer, "publish")))
    for backend in _BACKENDS:
        for name, hook in (
            ("on_task_call", _backend.on_task_call_hook),
            ("apply_chord", _backend.apply_chord_hook),
        ):
            if name in vars(backend):
                _patches.setattr(backend, name, hook(_original(backend, name)))
    result = celery.result.AsyncResult
    meta = _results.meta_hook(_original(result, "_get_task_meta"))
    _patches.setattr(result, "_get_task_meta", meta)
    for name in ("get", "wait"):
        _patches.setattr(result, name, _results.get_hook(_original(result, name)))
    result_set = celery.result.ResultSet
    for name in ("join", "join_native", "iter_native"):
        _patches.setattr(result_set, name, _results.join_hook(_original(result_set, name)))
    for cls, name, hook in (
        (celery.worker.worker.WorkController, "start", _worker.start_hook),
        (celery.worker.consumer.consumer.Consumer, "add_task_queue", _worker.add_queue_hook),
        (celery.app.control.Control, "purge", _worker.purge_hook),
    ):
        _patches.setattr(cls, name, hook(_original(cls, name)))


def _original(cls: type, name: str) -> Any:
    return class_method(cls, name, "celery", "celery>=5.4")


def _forget() -> None:
    _results.forget()
    _worker.set_shadow_queues(frozenset())
