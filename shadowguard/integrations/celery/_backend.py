"""Result backends in shadow: no preparing for a result that never comes, no chord state.

When a task is sent, ``Celery.send_task`` asks the backend to get ready for its result
(``on_task_call``: the Redis backend subscribes to the result's channel, the RPC backend
declares its reply queue); a chord first stores its size or sends ``chord_unlock``
(``apply_chord``). In shadow none of it is wanted: the message is not sent. A chord still
checks that the backend allows chords (``ensure_chords_allowed``), as on the primary, and
its body's id is remembered as suppressed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shadowguard.contract import PROCESS, mark_wrapped, scope_now
from shadowguard.integrations.celery._results import remember

__all__ = ["apply_chord_hook", "on_task_call_hook"]


def on_task_call_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    def on_task_call(self: Any, producer: Any, task_id: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, producer, task_id)
        return None

    mark_wrapped(on_task_call, original)
    return on_task_call


def apply_chord_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    def apply_chord(self: Any, header_result_args: Any, body: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, header_result_args, body, **kwargs)
        self.ensure_chords_allowed()
        body_id = getattr(body, "id", None)
        if isinstance(body_id, str):
            remember([body_id])
        return None

    mark_wrapped(apply_chord, original)
    return apply_chord
