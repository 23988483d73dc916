"""What a shadow scope undoes when it ends, in order: its Sessions, then its connections.

One clean-up per outermost scope, registered at the scope's first use of SQLAlchemy.
Sessions go first: rolling back a Session's transaction uses its connections, which must
still be as the shadow left them (a Session joined to the primary's connection rolls back
to a savepoint inside the scope's own). Then every connection, and every raw connection,
the scope used and that is still checked out. A step that fails is logged and the others
still run; each step falls back to discarding what it could not clean (fail closed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from shadowguard.contract import Kind, Scope, refuse
from shadowguard.integrations.sqlalchemy._registry import PATCHES

__all__ = ["CONNECTIONS", "SESSIONS", "at_scope_end"]

logger = logging.getLogger("shadowguard")

SESSIONS = 0
CONNECTIONS = 1


class _Cleanup:
    __slots__ = ("root", "steps")

    def __init__(self, root: Scope) -> None:
        self.root = root
        self.steps: tuple[list[Callable[[], object]], ...] = ([], [])

    def run(self) -> None:
        with PATCHES.lock:
            if _cleanups.get(id(self.root)) is self:
                del _cleanups[id(self.root)]
        for steps in self.steps:
            for step in steps:
                try:
                    step()
                except Exception:
                    logger.exception("shadowguard: undoing SQLAlchemy shadow work failed")


# Scopes cannot be weakly referenced: keyed by id, the entry checked for the same scope.
_cleanups: dict[int, _Cleanup] = {}


def at_scope_end(root: Scope, stage: int, step: Callable[[], object]) -> None:
    """Run ``step`` when the outermost scope ``root`` ends, in ``stage`` order.

    Refused in a scope that has already ended (work that outlived it, such as a task
    that inherited its context): nothing would undo it.
    """
    if root.ended:
        raise refuse(
            Kind.DB_COMMIT,
            "sqlalchemy",
            "execute",
            f"database work in the shadow scope {root.reason!r} after that scope ended "
            "(a task or thread started by a shadow request outlived it): nothing would "
            "undo it",
            remedy="Start long-lived workers at start-up, or inside "
            "'with shadowguard.detached():' so that they run as primary",
        )
    with PATCHES.lock:
        cleanup = _cleanups.get(id(root))
        if cleanup is None or cleanup.root is not root:
            cleanup = _cleanups[id(root)] = _Cleanup(root)
            root.on_exit(cleanup.run)
        cleanup.steps[stage].append(step)
