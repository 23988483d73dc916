"""What the sync and asyncio seams share: the installed rules and the shadow decision."""

from __future__ import annotations

from typing import Any

from shadowguard._outbound import GrpcDecision, GrpcReply, GrpcRules

__all__ = ["STATE", "Finished", "Judged", "answer", "judge", "text"]


class _State:
    """The rules given to ``install()``; replaced, never mutated."""

    rules = GrpcRules()


STATE = _State()

#: A shadow call's verdict: ``(target, method, decision)``.
Judged = tuple[str, str, GrpcDecision]


class Finished:
    """What a call a stub answered says of its course, sync or asyncio: done, never
    cancelled, no time left."""

    def cancel(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def done(self) -> bool:
        return True

    def time_remaining(self) -> float | None:
        return None


def text(value: bytes | str) -> str:
    """A method name or target as text; bytes that are not UTF-8 keep their escapes, which
    no rule's name can match."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


def judge(target: bytes | str, method: bytes | str) -> Judged:
    """Decide a shadow call by the installed rules."""
    target_text, method_text = text(target), text(method)
    return target_text, method_text, STATE.rules.decide(target_text, method_text)


def answer(judged: Judged, shape: str, request: Any) -> GrpcReply:
    """The stub's reply for a call not let out (recorded), or raise its refusal."""
    target, method, decision = judged
    return STATE.rules.answer(decision, target, method, shape, request)
