"""The shadow state of the current context: scopes and what they suppressed.

The state is one ContextVar holding the innermost :class:`Scope` (or None). Every
``set()`` is paired with a ``reset(token)``.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import Any, ParamSpec, TypeVar, cast, overload

from shadowguard import _config, telemetry
from shadowguard._config import PROCESS
from shadowguard._suppression import EMPTY, Suppression

__all__ = [
    "Scope",
    "Suppression",
    "current_scope",
    "enter_scope",
    "is_shadow",
    "leave_scope",
    "propagate",
    "record_suppression",
    "scope_now",
    "shadow",
]

logger = logging.getLogger("shadowguard")

P = ParamSpec("P")
R = TypeVar("R")


class Scope:
    """A block of code running as shadow traffic.

    ``suppressed`` keeps at most ``limit`` records (the ``SHADOWGUARD_MAX_SUPPRESSIONS``
    setting); ``counts`` and ``total`` stay exact. Records made in a nested scope are
    also reported to every enclosing scope.
    """

    __slots__ = (
        "_exit_callbacks",
        "_lock",
        "counts",
        "dropped",
        "ended",
        "late",
        "limit",
        "parent",
        "reason",
        "suppressed",
        "total",
    )

    def __init__(
        self, reason: str | None = None, parent: Scope | None = None, *, limit: int | None = None
    ) -> None:
        self.reason = reason
        self.parent = parent
        self.limit = _config.settings_or_defaults().max_suppressions if limit is None else limit
        self.suppressed: list[Suppression] = []
        self.counts: Counter[str] = Counter()
        self.total = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._exit_callbacks: list[Callable[[], object]] = []
        #: Set when the scope's block has ended; work that still records in it outlived it.
        self.ended = False
        #: Suppressions recorded after the scope ended (see :func:`record_suppression`).
        self.late = 0

    def __repr__(self) -> str:
        return f"<shadowguard.Scope reason={self.reason!r} suppressed={self.total}>"

    @property
    def root(self) -> Scope:
        """The outermost enclosing scope."""
        scope = self
        while scope.parent is not None:
            scope = scope.parent
        return scope

    def add(self, suppression: Suppression) -> None:
        """Keep ``suppression`` in this scope (use :func:`record_suppression` to report one)."""
        with self._lock:
            self.total += 1
            self.counts[suppression.kind] += 1
            if len(self.suppressed) < self.limit:
                self.suppressed.append(suppression)
            else:
                self.dropped += 1

    def on_exit(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` when this scope ends (last registered runs first).

        Guards use this to undo work that must not outlive the shadow scope, such as
        rolling back a transaction. A failing callback is logged; the others still run.
        """
        with self._lock:
            self._exit_callbacks.append(callback)

    def end(self) -> None:
        """Mark the scope ended, then run its exit callbacks."""
        self.ended = True
        self.run_exit_callbacks()

    def run_exit_callbacks(self) -> None:
        """Run (and forget) the callbacks registered with :meth:`on_exit`, newest first."""
        while True:
            with self._lock:
                if not self._exit_callbacks:
                    return
                callback = self._exit_callbacks.pop()
            try:
                callback()
            except Exception:
                logger.exception("shadowguard: clean-up at the end of a shadow scope failed")


_current: ContextVar[Scope | None] = ContextVar("shadowguard_scope", default=None)
#: The innermost scope of the current context, or None: the bound ``ContextVar.get``,
#: so that a guard's pass-through costs one C call.
scope_now = _current.get


def is_shadow() -> bool:
    """Is the current context shadow traffic?"""
    return _current.get() is not None or PROCESS.shadow


def enter_scope(scope: Scope | None) -> Token[Scope | None]:
    """Make ``scope`` current (None: primary); pair every call with :func:`leave_scope`."""
    token = _current.set(scope)
    if scope is not None:
        telemetry.mark_span_shadow()
    return token


def leave_scope(token: Token[Scope | None]) -> None:
    """Undo the :func:`enter_scope` that returned ``token``."""
    _current.reset(token)


def current_scope() -> Scope | None:
    """The innermost shadow scope of the current context, or None."""
    return _current.get()


def record_suppression(
    kind: str,
    target: str,
    detail: Mapping[str, Any] | None = None,
    error: BaseException | None = None,
) -> Suppression:
    """Record a suppressed side effect in every enclosing scope and in telemetry.

    Called by the guards; also public for applications with a channel of their own.
    Recording in a scope that has already ended means work started by a shadow request
    outlived it (a task or worker that inherited its context) and keeps suppressing what
    may be primary work: that is logged as a warning, once per scope.
    """
    suppression = Suppression(
        kind, target, MappingProxyType(dict(detail)) if detail else EMPTY, error
    )
    scope = _current.get()
    if scope is not None and scope.ended:
        _record_late(scope, suppression)
    while scope is not None:
        scope.add(suppression)
        scope = scope.parent
    telemetry.record_suppression(suppression)
    logger.debug("shadowguard suppressed %s %s", kind, target)
    return suppression


def _record_late(scope: Scope, suppression: Suppression) -> None:
    with scope._lock:
        scope.late += 1
        first = scope.late == 1
    telemetry.record_late_suppression(suppression)
    if first:
        logger.warning(
            "shadowguard: %s %s was suppressed in the shadow scope %r after that scope ended: "
            "work started from a shadow request (an asyncio task, a thread, a worker started "
            "lazily by the first request) inherited its shadow state and outlived it, so "
            "everything it does is suppressed, primary work included. Start long-lived "
            "workers at start-up, or inside 'with shadowguard.detached():'",
            suppression.kind,
            suppression.target,
            scope.reason,
        )


class shadow:
    """Run the enclosed code as shadow traffic.

    A context manager (``with`` and ``async with``) that yields the new :class:`Scope`,
    and a decorator for sync and async functions (each call gets its own scope)::

        with shadowguard.shadow("replay") as scope:
            place_order()
        assert scope.counts["db.commit"] == 1
    """

    def __init__(self, reason: str | None = None) -> None:
        self.reason = reason
        # One instance may be entered by several threads or tasks at once (a module-level
        # ``GUARD = shadow("replay")``): each exit must take its own context's entry.
        self._entered: list[tuple[Token[Scope | None], Scope]] = []
        self._lock = threading.Lock()

    def __enter__(self) -> Scope:
        scope = Scope(self.reason, _current.get())
        token = _current.set(scope)
        with self._lock:
            self._entered.append((token, scope))
        telemetry.mark_span_shadow()
        return scope

    def __exit__(self, *exc: object) -> None:
        current = _current.get()
        with self._lock:
            for index in range(len(self._entered) - 1, -1, -1):
                if self._entered[index][1] is current:
                    token, scope = self._entered.pop(index)
                    break
            else:
                raise RuntimeError("shadow() exited in a context where it was not entered")
        try:
            scope.end()
        finally:
            _current.reset(token)

    async def __aenter__(self) -> Scope:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            # A generator suspended inside the scope would leave the caller's context
            # shadow between items; refuse rather than blur primary and shadow.
            raise TypeError(
                f"shadow() cannot decorate the generator function {fn.__qualname__}; "
                "use 'with shadow():' around the code that consumes it"
            )
        reason = self.reason
        if inspect.iscoroutinefunction(fn):
            afn = cast(Callable[..., Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with shadow(reason):
                    return await afn(*args, **kwargs)

            return cast(Callable[P, R], run_async)

        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            scope = Scope(reason, _current.get())
            token = _current.set(scope)
            telemetry.mark_span_shadow()
            try:
                result = fn(*args, **kwargs)
            except BaseException:
                _close(scope, token)
                raise
            if not inspect.isawaitable(result):
                _close(scope, token)
                return result
            # A sync callable that returns an awaitable (a wrapped coroutine function, an
            # object with ``async __call__``): its body runs when awaited, so the scope
            # must last until then, in the awaiting context.
            _current.reset(token)
            return cast(R, _await_in_scope(scope, result))

        return run


def _close(scope: Scope, token: Token[Scope | None]) -> None:
    try:
        scope.end()
    finally:
        _current.reset(token)


async def _await_in_scope(scope: Scope, awaitable: Awaitable[Any]) -> Any:
    token = _current.set(scope)
    try:
        return await awaitable
    finally:
        _close(scope, token)


@overload
def propagate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
@overload
def propagate(fn: Callable[P, R]) -> Callable[P, R]: ...
def propagate(fn: Callable[P, Any]) -> Callable[P, Any]:
    """Return ``fn`` bound to the caller's shadow state, for threads and executors.

    ``threading.Thread``, ``ThreadPoolExecutor.submit`` and ``loop.run_in_executor`` do
    not copy context variables: without ``propagate`` work handed to them runs as
    primary (unless ``SHADOW_MODE`` is true).
    """
    scope = _current.get()
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def bound_async(*args: Any, **kwargs: Any) -> Any:
            token = _current.set(scope)
            try:
                return await fn(*args, **kwargs)
            finally:
                _current.reset(token)

        return bound_async

    @functools.wraps(fn)
    def bound(*args: P.args, **kwargs: P.kwargs) -> Any:
        token = _current.set(scope)
        try:
            return fn(*args, **kwargs)
        finally:
            _current.reset(token)

    return bound
