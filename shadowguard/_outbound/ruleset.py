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
    from_text: Callable[[str], A],
    accepted: str,
) -> tuple[tuple[A, ...], tuple[S, ...]]:
    """``allow=`` and ``stubs=`` as tuples, checked: an allow rule given as text is
    ``from_text(rule)``; ``accepted`` names what ``allow=`` takes, for the error."""
    if isinstance(allow, (str, allow_type)) or isinstance(stubs, stub_type):
        raise ConfigError("allow= and stubs= take lists of rules")
    allowed = tuple(_allow_rule(rule, allow_type, from_text, accepted) for rule in allow)
    stubbed = tuple(stubs)
    for stub in stubbed:
        if not isinstance(stub, stub_type):
            raise ConfigError(f"stubs= takes shadowguard {stub_type.__name__} rules, got {stub!r}")
    return allowed, stubbed


def _allow_rule(
    rule: object, allow_type: type[A], from_text: Callable[[str], A], accepted: str
) -> A:
    if isinstance(rule, allow_type):
        return rule
    if isinstance(rule, str):
        return from_text(rule)
    raise ConfigError(f"allow= takes {accepted}, got {rule!r}")


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
