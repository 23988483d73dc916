"""Django ORM guard: shadow requests write only inside transactions that are rolled back.

:class:`ShadowTransactions` opens an atomic block on every database alias and rolls it
back at the end, so the database validates every write (constraints, triggers) and later
reads in the same request see earlier writes, yet nothing commits and
``transaction.on_commit`` callbacks never run. The seams, one module each:

- :mod:`._execute`: the execute wrapper (``connection.execute_wrappers``) records what
  would have committed and refuses, in shadow, every write on a connection outside a
  shadow transaction, and everywhere what no rollback undoes: raw transaction control,
  several statements in one call, and what the core classifier
  (``shadowguard._statements``) refuses, such as DDL and, on MySQL and MariaDB, every
  statement that commits the open transaction first.
- :mod:`._transactions`: :class:`ShadowTransactions`, the per-block form the middleware
  uses.
- :mod:`._raw`: while a shadow transaction is open, the driver's own connection
  (``connection.connection``) refuses what would end it below Django (``commit()``,
  autocommit, statements through its own cursors).

:mod:`._registry` holds the patch registry. There is no ``guard(obj)``: the wrapper is
added to every connection, including those opened before :func:`install`.
"""

from __future__ import annotations

import functools
from typing import Any

from shadowguard.contract import missing_extra_error

try:
    from django.db import connections
    from django.db.backends.signals import connection_created
except ImportError as exc:  # pragma: no cover - exercised without Django installed
    raise missing_extra_error("django", "django") from exc

from shadowguard.integrations.django import _execute
from shadowguard.integrations.django._execute import is_write
from shadowguard.integrations.django._registry import PATCHES as _patches
from shadowguard.integrations.django._transactions import ShadowTransactions

__all__ = ["ShadowTransactions", "install", "is_write", "uninstall"]


def _on_connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    _execute.add_guard(connection)


def _apply() -> None:
    connection_created.connect(_on_connection_created, dispatch_uid="shadowguard")
    _patches.add("django.db.backends.signals.connection_created", _disconnect)
    from django.conf import settings

    if settings.configured:
        # Connections opened before install() get the guard too.
        for connection in connections.all(initialized_only=True):
            if _execute.add_guard(connection):
                _patches.add(
                    f"execute_wrappers of Django database {connection.alias!r}",
                    functools.partial(_execute.remove_guard, connection),
                )


def _disconnect() -> None:
    connection_created.disconnect(dispatch_uid="shadowguard")


def install(**options: Any) -> None:
    """Refuse shadow writes on every Django connection outside a shadow transaction.

    It takes no options; idempotent.
    """
    _patches.install(_apply, options)


def _remove_idle_guards() -> None:
    from django.conf import settings

    if settings.configured:
        for connection in connections.all(initialized_only=True):
            if getattr(connection, _execute.DEPTH_ATTR, None) is None:
                _execute.remove_guard(connection)


def uninstall() -> None:
    """Undo :func:`install`; connections created meanwhile in this thread lose the guard too."""
    _patches.uninstall(after=_remove_idle_guards)
