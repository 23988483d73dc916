"""What the HTTP and gRPC rule sets share: their arguments checked once, a stub's answer recorded."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from shadowguard.contract import Action, record
from shadowguard.errors import ConfigError

__all__ = ["rule_lists", "stub_answer", "stub_reply", "telemetry_flag"]

A = TypeVar("A")
S = TypeVar("S")
R = TypeVar("R")


def telemetry_flag(value: object) -> bool:
    """``telemetry_exports=`` checked to be a bool."""
    if not isinstance(value, bool):
        raise ConfigError(
            f"telemetry_exports={value!r} is not valid: accepted values are True or False"
        )
    return value


def rule_lists(
    allow: Iterable[Any],
    stubs: Iterable[Any],
    allow_type: type[A],
    stub_type: type[S],
    as_allow: Callable[[Any], A],
) -> tuple[tuple[A, ...], tuple[S, ...]]:
    """``allow=`` (each turned into an ``allow_type`` rule) and ``stubs=`` as tuples, checked."""
    if isinstance(allow, (str, allow_type)) or isinstance(stubs, stub_type):
        raise ConfigError("allow= and stubs= take lists of rules")
    allowed = tuple(as_allow(rule) for rule in allow)
    stubbed = tuple(stubs)
    for stub in stubbed:
        if not isinstance(stub, stub_type):
            raise ConfigError(f"stubs= takes shadowguard {stub_type.__name__} rules, got {stub!r}")
    return allowed, stubbed


def stub_answer(
    kind: str,
    target: str,
    operation: str,
    detail: dict[str, Any],
    build: Callable[[], R],
    outcome: Callable[[R], tuple[str, object]],
) -> R:
    """A stub's reply from ``build()``, recorded as stubbed with the ``outcome`` entry added
    to ``detail`` (or with the error ``build()`` raised, which then propagates)."""
    try:
        reply = build()
    except Exception as exc:
        record(kind, target, operation, detail, error=exc, action=Action.STUBBED)
        raise
    key, value = outcome(reply)
    detail[key] = value
    record(kind, target, operation, detail, action=Action.STUBBED)
    return reply


def stub_reply(
    fixed: R | None,
    respond: Callable[[Any], object] | None,
    request: Any,
    reply_type: type[R],
    must: str,
) -> R:
    """A stub's ``fixed`` reply, or the one its ``respond(request)`` builds, checked to be a
    ``reply_type`` (``must`` begins the TypeError otherwise)."""
    if fixed is not None:
        return fixed
    assert respond is not None
    reply = respond(request)
    if not isinstance(reply, reply_type):
        raise TypeError(f"{must}, got {reply!r}")
    return reply
