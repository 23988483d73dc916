"""The sink contract: what sinks (guarded channels) and sources (middleware) use of the core.

Nothing else of the core is theirs to touch. A sink's wrapper starts with the cheap
pass-through, one ContextVar read and one flag, exactly this line::

    if scope_now() is None and not PROCESS.shadow:
        return wrapped(*args, **kwargs)

and on the shadow path validates, then records what it did instead with :func:`record`,
or refuses with ``raise refuse(...)`` (a refusal is recorded too, so it can be counted).
Work a guard does for primary requests while a shadow request is current (serving a
shared producer's delivery reports) runs inside ``with as_primary():``.

A source (a web middleware) decides with :func:`detect`, then runs the request inside a
:class:`RequestScope`, or enters and leaves a plain :class:`Scope` with
:func:`enter_scope` and :func:`leave_scope`.

A sink installs through its :class:`Patches` registry (``patches.install(apply,
options)``), which validates options, locks, skips a second install and undoes a half-done
one; each wrapper it puts in place is marked with :func:`mark_wrapped`. It looks the methods
it wraps up with :func:`class_method`, and validates an option that lists names with
:func:`names_option`.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Iterable, Mapping
from typing import Any

from shadowguard import telemetry
from shadowguard._bursts import BURST_GAP_SECONDS, Bursts
from shadowguard._config import PROCESS, Settings, get_settings, settings_or_defaults
from shadowguard._context import (
    Scope,
    enter_scope,
    is_shadow,
    leave_scope,
    record_suppression,
    scope_now,
    shadow,
)
from shadowguard._detect import Detection, detect
from shadowguard._patching import Patches, is_wrapped, mark_wrapped, unwrapped
from shadowguard._scopes import RequestScope, as_primary
from shadowguard._suppression import Action, Kind, Suppression
from shadowguard.errors import ConfigError, ShadowSideEffectBlocked, missing_extra_error

__all__ = [
    "BURST_GAP_SECONDS",
    "PROCESS",
    "Action",
    "Bursts",
    "Detection",
    "Kind",
    "Patches",
    "RequestScope",
    "Scope",
    "Settings",
    "ShadowSideEffectBlocked",
    "Suppression",
    "as_primary",
    "class_method",
    "detect",
    "enter_scope",
    "get_settings",
    "is_shadow",
    "is_wrapped",
    "leave_scope",
    "mark_wrapped",
    "missing_extra_error",
    "names_option",
    "record",
    "refuse",
    "scope_now",
    "settings_or_defaults",
    "shadow",
    "telemetry",
    "unwrapped",
]


def record(
    kind: str,
    target: str,
    operation: str,
    detail: Mapping[str, Any] | None = None,
    *,
    error: BaseException | None = None,
    action: str = Action.SUPPRESSED,
) -> Suppression:
    """Record that ``operation`` on ``target`` did not happen, in every enclosing scope.

    ``detail`` holds the kind's own keys (see :class:`Kind`); ``operation`` and ``action``
    are added to it. ``error`` is what the operation raised or would have raised.
    """
    merged: dict[str, Any] = {"operation": operation, "action": action}
    if detail:
        merged.update(detail)
    return record_suppression(kind, target, merged, error)


def refuse(
    kind: str,
    target: str,
    operation: str,
    what: str,
    *,
    remedy: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> ShadowSideEffectBlocked:
    """Record a refusal and return the exception for the guard to raise (fail closed).

    ``what`` says what was blocked and ``remedy`` how to let the code run in shadow::

        raise refuse(Kind.DB_COMMIT, url, "execute", "DROP TABLE in shadow", remedy=...)
    """
    exc = ShadowSideEffectBlocked(what, remedy=remedy)
    record(kind, target, operation, detail, error=exc, action=Action.BLOCKED)
    return exc


def class_method(cls: type, name: str, integration: str, requirement: str) -> Any:
    """``cls``'s own attribute ``name``, the method a sink wraps; if the installed library
    lacks it, an ``ImportError`` saying that the ``integration`` needs ``requirement``
    (``"celery>=5.4"``) and which version is installed."""
    try:
        return vars(cls)[name]
    except KeyError:
        package = re.split(r"[<>=!~ ]", requirement, maxsplit=1)[0]
        try:
            installed = f" in {package} {importlib.metadata.version(package)}"
        except importlib.metadata.PackageNotFoundError:
            installed = ""
        raise ImportError(
            f"shadowguard's {integration} integration needs {requirement}: "
            f"{cls.__module__}.{cls.__qualname__}.{name} is missing{installed}"
        ) from None


def names_option(integration: str, option: str, value: object, names: str) -> frozenset[str]:
    """The ``install()`` option ``option``, a list of ``names`` (non-empty strings), as a set;
    anything else (a bare string too) is a ``ConfigError`` naming the integration and option."""
    given = (
        list(value) if isinstance(value, Iterable) and not isinstance(value, (str, bytes)) else None
    )
    if given is None or not all(isinstance(name, str) and name for name in given):
        raise ConfigError(
            f"the {integration} integration's {option}={value!r} is not valid: "
            f"give a list of {names} (non-empty strings)"
        )
    return frozenset(given)
