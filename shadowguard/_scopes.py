"""Scopes entered and left outside a ``with`` block.

:class:`RequestScope` serves middleware, whose request phases run in different frames;
:class:`as_primary` serves guards (and applications, as ``shadowguard.detached``) that must
run a block outside the current request's shadow scope.
"""

from __future__ import annotations

from contextvars import Token

from shadowguard._context import Scope, enter_scope, leave_scope, scope_now

__all__ = ["RequestScope", "as_primary"]


class as_primary:
    """Run a block outside any request's shadow scope (public as ``shadowguard.detached``).

    For work that belongs to primary requests but runs while a shadow request is current:
    a guard serving the primary's delivery reports from a shared producer, or an
    application starting a long-lived worker from inside a request
    (``with shadowguard.detached(): asyncio.create_task(worker())``: the task copies the
    context without the request's scope). In a process that is shadow as a whole
    (``SHADOW_MODE=true``) the block stays shadow: there is no primary to run as.
    """

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token = enter_scope(None)

    def __exit__(self, *exc: object) -> None:
        leave_scope(self._token)


class RequestScope:
    """A shadow scope that is entered and left several times for one request.

    WSGI servers iterate a response body in their own frames after the application
    returned, so a ContextVar set in ``__call__`` cannot simply stay set: it would leak
    into the server's thread (and the next request it serves) if ``close()`` were never
    called. Each phase of the request enters the scope and resets it with its token.
    """

    __slots__ = ("_finished", "scope")

    def __init__(self, reason: str | None) -> None:
        self.scope = Scope(reason, scope_now())
        self._finished = False

    def enter(self) -> Token[Scope | None]:
        """Make the scope current; pass the token to :meth:`exit`."""
        return enter_scope(self.scope)

    def inside(self) -> _Inside:
        """``with request_scope.inside():`` runs the block in the scope (one phase)."""
        return _Inside(self.scope)

    @staticmethod
    def exit(token: Token[Scope | None]) -> None:
        """Leave the scope entered with ``token``."""
        leave_scope(token)

    @property
    def finished(self) -> bool:
        """Has :meth:`finish` run?"""
        return self._finished

    def finish(self) -> bool:
        """Run the scope's exit callbacks inside the scope, once; False if already finished."""
        if self._finished:
            return False
        self._finished = True
        token = self.enter()
        try:
            self.scope.end()
        finally:
            leave_scope(token)
        return True


class _Inside:
    __slots__ = ("_scope", "_token")

    def __init__(self, scope: Scope) -> None:
        self._scope = scope

    def __enter__(self) -> None:
        self._token = enter_scope(self._scope)

    def __exit__(self, *exc: object) -> None:
        leave_scope(self._token)
