"""Results of tasks that shadow did not send: PENDING, and waiting for them fails at once.

A task id goes into a bounded registry when its message is suppressed (with the ids its
message carries for a chain's later steps, a chord's body and callbacks). For an id in it,
``AsyncResult`` answers ``PENDING`` without asking the result backend, and ``get()`` (or a
group's ``join()``) raises :class:`ShadowTaskResultUnavailable` at once instead of waiting
for a result that never comes: it is a ``celery.exceptions.TimeoutError``, so code that
handles a timed-out ``get(timeout=...)`` handles it too. The registry is keyed by id, so a
result re-created from the id (``app.AsyncResult(task_id)``), or one kept past the shadow
request, behaves the same.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeoutError

from shadowguard.contract import mark_wrapped
from shadowguard.errors import ShadowGuardError

__all__ = [
    "ShadowTaskResultUnavailable",
    "embedded_ids",
    "forget",
    "get_hook",
    "join_hook",
    "meta_hook",
    "remember",
    "was_suppressed",
]

#: Suppressed task ids kept; the oldest are forgotten first (a shadow worker may run long).
MAX_IDS = 65_536
_ids: OrderedDict[str, None] = OrderedDict()
_lock = threading.Lock()
_NESTING = 32  # a chain in a chord in a group: deeper than any canvas one builds by hand


# celery has no type information: its TimeoutError is Any to mypy.
class ShadowTaskResultUnavailable(ShadowGuardError, CeleryTimeoutError):  # type: ignore[misc]
    """The result of a task that was not sent because it was called in shadow traffic."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(
            f"shadowguard: the Celery task {task_id} was not sent (it was called in shadow "
            "traffic), so its result never arrives. Handle celery.exceptions.TimeoutError "
            "(this error is one) where shadow traffic waits for a result, or wrap the call "
            "in @shadowguard.side_effect(returns=...)"
        )


def remember(ids: Iterable[str]) -> None:
    """Note task ids whose messages were suppressed."""
    with _lock:
        for task_id in ids:
            _ids[task_id] = None
            _ids.move_to_end(task_id)
        while len(_ids) > MAX_IDS:
            _ids.popitem(last=False)


def was_suppressed(task_id: object) -> bool:
    """Was ``task_id``'s message suppressed in shadow?"""
    return task_id in _ids


def forget() -> None:
    with _lock:
        _ids.clear()


def embedded_ids(value: Any, depth: int = 0) -> Iterator[str]:
    """The task ids of the signatures in a message's ``embed`` (chain, chord, callbacks)."""
    if depth > _NESTING:
        return
    if isinstance(value, Mapping):
        options = value.get("options")
        if isinstance(options, Mapping) and isinstance(options.get("task_id"), str):
            yield options["task_id"]
        for item in value.values():
            yield from embedded_ids(item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from embedded_ids(item, depth + 1)


def _pending(task_id: str) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "status": "PENDING",
        "result": None,
        "traceback": None,
        "children": None,
        "date_done": None,
    }


def meta_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    def _get_task_meta(self: Any) -> Any:
        if _ids and self.id in _ids:
            return _pending(self.id)
        return original(self)

    mark_wrapped(_get_task_meta, original)
    return _get_task_meta


def get_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    def get(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _ids and self.id in _ids:
            raise ShadowTaskResultUnavailable(self.id)
        return original(self, *args, **kwargs)

    mark_wrapped(get, original)
    return get


def join_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    """``ResultSet.join``/``join_native``/``iter_native``: fail at the first suppressed child
    (``join_native`` asks the backend for all children at once, so it would wait forever)."""

    def join(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _ids:
            for result in self.results:
                if result.id in _ids:
                    raise ShadowTaskResultUnavailable(result.id)
        return original(self, *args, **kwargs)

    mark_wrapped(join, original)
    return join
