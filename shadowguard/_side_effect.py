"""The ``@side_effect`` decorator: mark any function as a side effect to skip in shadow."""

from __future__ import annotations

import functools
import inspect
import keyword
import types
from collections.abc import Callable
from typing import Any, TypeVar, overload

from shadowguard.contract import PROCESS, Action, Kind, record, scope_now

__all__ = ["side_effect"]

F = TypeVar("F", bound=Callable[..., Any])
_UNSET: Any = object()
_OPERATION = "call"


def _target(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}.{getattr(fn, '__qualname__', repr(fn))}"


def _wrap(fn: F, returns: Any, instead: Callable[..., Any] | None) -> F:
    if isinstance(fn, (staticmethod, classmethod)):
        return type(fn)(_wrap(fn.__func__, returns, instead))
    if not callable(fn):
        raise TypeError(f"side_effect() needs a function, got {fn!r}")
    target = _target(fn)
    if inspect.iscoroutinefunction(fn):
        return functools.wraps(fn)(_async_wrapper(fn, target, returns, instead))  # type: ignore[return-value]
    if instead is None:
        value = None if returns is _UNSET else returns
        action = Action.SUPPRESSED if returns is _UNSET else Action.STUBBED

        def skip() -> Any:
            record(Kind.CALL, target, _OPERATION, {"mode": "returns"}, action=action)
            return value

        guarded = _with_parameters_of(fn, skip)
        if guarded is not None:
            return functools.wraps(fn)(guarded)  # type: ignore[return-value]

        def guarded_any(*args: Any, **kwargs: Any) -> Any:
            if scope_now() is None and not PROCESS.shadow:
                return fn(*args, **kwargs)
            return skip()

        return functools.wraps(fn)(guarded_any)  # type: ignore[return-value]

    def guarded_instead(*args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return fn(*args, **kwargs)
        try:
            result = instead(*args, **kwargs)
        except Exception as exc:
            _record_instead(target, exc)
            raise
        _record_instead(target)
        return result

    return functools.wraps(fn)(guarded_instead)  # type: ignore[return-value]


def _async_wrapper(
    fn: Callable[..., Any], target: str, returns: Any, instead: Callable[..., Any] | None
) -> Callable[..., Any]:
    async def guarded_async(*args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return await fn(*args, **kwargs)
        if instead is None:
            action = Action.SUPPRESSED if returns is _UNSET else Action.STUBBED
            record(Kind.CALL, target, _OPERATION, {"mode": "returns"}, action=action)
            return None if returns is _UNSET else returns
        try:
            result = instead(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            _record_instead(target, exc)
            raise
        _record_instead(target)
        return result

    return guarded_async


def _record_instead(target: str, error: BaseException | None = None) -> None:
    record(Kind.CALL, target, _OPERATION, {"mode": "instead"}, error=error, action=Action.STUBBED)


_GENERATED = """\
def {name}({parameters}):
    if scope_now() is None and not PROCESS.shadow:
        return _sg_fn({arguments})
    return _sg_skip()
"""


def _with_parameters_of(fn: Any, skip: Callable[[], Any]) -> Callable[..., Any] | None:
    """A wrapper with ``fn``'s own parameters (and defaults), or None if ``fn`` is not a
    plain function.

    On the primary path it calls ``fn`` with the arguments it bound, without packing them
    into ``*args, **kwargs`` and unpacking them again: that repacking is most of what a
    generic wrapper costs.
    """
    if not isinstance(fn, types.FunctionType):
        return None
    code = fn.__code__
    names = code.co_varnames
    positional = list(names[: code.co_argcount])
    keyword_only = list(names[code.co_argcount : code.co_argcount + code.co_kwonlyargcount])
    rest = iter(names[code.co_argcount + code.co_kwonlyargcount :])
    varargs = next(rest) if code.co_flags & inspect.CO_VARARGS else None
    varkw = next(rest) if code.co_flags & inspect.CO_VARKEYWORDS else None
    every = [*positional, *keyword_only, *(n for n in (varargs, varkw) if n)]
    namespace: dict[str, Any] = {
        "scope_now": scope_now,
        "PROCESS": PROCESS,
        "_sg_fn": fn,
        "_sg_skip": skip,
    }
    if any(not n.isidentifier() or keyword.iskeyword(n) or n in namespace for n in every):
        return None
    posonly = code.co_posonlyargcount
    parameters = positional[:posonly] + (["/"] if posonly else []) + positional[posonly:]
    if varargs or keyword_only:
        parameters.append(f"*{varargs or ''}")
    parameters += keyword_only
    arguments = [*positional, *([f"*{varargs}"] if varargs else [])]
    arguments += [f"{k}={k}" for k in keyword_only]
    if varkw:
        parameters.append(f"**{varkw}")
        arguments.append(f"**{varkw}")
    name = fn.__name__
    if not name.isidentifier() or keyword.iskeyword(name):
        name = "guarded"  # a lambda
    source = _GENERATED.format(
        name=name, parameters=", ".join(parameters), arguments=", ".join(arguments)
    )
    exec(compile(source, f"<shadowguard side_effect of {name}>", "exec"), namespace)
    wrapper: types.FunctionType = namespace[name]
    wrapper.__defaults__ = fn.__defaults__
    wrapper.__kwdefaults__ = fn.__kwdefaults__
    return wrapper


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
