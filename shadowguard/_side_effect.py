"""The ``@side_effect`` decorator: mark any function as a side effect to skip in shadow."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

from shadowguard._context import record_suppression
from shadowguard.contract import PROCESS, scope_now

__all__ = ["side_effect"]

F = TypeVar("F", bound=Callable[..., Any])
_UNSET: Any = object()


def _target(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}.{getattr(fn, '__qualname__', repr(fn))}"


def _wrap(fn: F, returns: Any, instead: Callable[..., Any] | None) -> F:
    if isinstance(fn, (staticmethod, classmethod)):
        return type(fn)(_wrap(fn.__func__, returns, instead))
    if not callable(fn):
        raise TypeError(f"side_effect() needs a function, got {fn!r}")
    target = _target(fn)
    mode = "instead" if instead is not None else "returns"

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def guarded_async(*args: Any, **kwargs: Any) -> Any:
            if scope_now() is None and not PROCESS.shadow:
                return await fn(*args, **kwargs)
            if instead is None:
                record_suppression("call", target, {"mode": mode})
                return None if returns is _UNSET else returns
            try:
                result = instead(*args, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
            except Exception as exc:
                record_suppression("call", target, {"mode": mode}, exc)
                raise
            record_suppression("call", target, {"mode": mode})
            return result

        return guarded_async  # type: ignore[return-value]

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return fn(*args, **kwargs)
        if instead is None:
            record_suppression("call", target, {"mode": mode})
            return None if returns is _UNSET else returns
        try:
            result = instead(*args, **kwargs)
        except Exception as exc:
            record_suppression("call", target, {"mode": mode}, exc)
            raise
        record_suppression("call", target, {"mode": mode})
        return result

    return guarded  # type: ignore[return-value]


@overload
def side_effect(fn: F, /) -> F: ...
@overload
def side_effect(
    *, returns: Any = ..., instead: Callable[..., Any] | None = ...
) -> Callable[[F], F]: ...
def side_effect(
    fn: Any = None,
    /,
    *,
    returns: Any = _UNSET,
    instead: Callable[..., Any] | None = None,
) -> Any:
    """Mark a function (sync or async, plain or method) as a side effect.

    In shadow the function is not called and a ``Suppression(kind="call")`` is recorded.
    It returns None, the value given as ``returns=``, or the result of ``instead=``, which
    is called with the same arguments (for validation; its exceptions propagate)::

        @side_effect(returns={"status": "queued"})
        def send_welcome_email(user): ...
    """
    if returns is not _UNSET and instead is not None:
        raise TypeError("side_effect() takes returns= or instead=, not both")
    if instead is not None and not callable(instead):
        raise TypeError(f"side_effect(instead=...) needs a callable, got {instead!r}")
    if fn is not None:
        return _wrap(fn, returns, instead)
    return lambda f: _wrap(f, returns, instead)
