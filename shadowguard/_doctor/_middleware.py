"""Is the application wrapped by a shadowguard middleware (the source of shadow requests)?

Without one, no mirrored request is ever detected as shadow and every guard stays idle.
Looked for in FastAPI/Starlette's ``user_middleware`` and built stack, Flask's
``wsgi_app``, Django's ``settings.MIDDLEWARE``, and along the ``app``/``wsgi_app``
chain of any ASGI or WSGI callable.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

__all__ = ["Wrapping", "wrapping"]

# ``__self__``: Flask's ``wsgi_app`` is the middleware's bound ``__call__`` once guarded.
_CHAIN = ("app", "wsgi_app", "application", "get_response", "__wrapped__", "__self__")
_MAX_STEPS = 64


@dataclass(frozen=True)
class Wrapping:
    """``found`` is where the middleware sits, or None; ``remedy`` how to add it.

    ``options`` are the settings the middleware was given where the application shows them
    (``add_middleware`` keywords, Flask's ``SHADOWGUARD`` config, Django's ``SHADOWGUARD``).
    """

    kind: str
    found: str | None
    remedy: str
    options: dict[str, Any] | None = None


def _module(cls: type) -> str:
    module = getattr(cls, "__module__", None)
    return module if isinstance(module, str) else ""


def _ours(cls: object) -> TypeGuard[type]:
    return isinstance(cls, type) and any(
        _module(c).startswith("shadowguard.middleware") for c in cls.__mro__
    )


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _kind(obj: Any) -> str:
    if inspect.isfunction(obj) or inspect.ismethod(obj):
        return f"function {obj.__module__}.{obj.__qualname__}"
    if isinstance(obj, type):
        return f"class {_name(obj)}"
    return _name(type(obj))


def _remedy(obj: Any) -> str:
    if hasattr(obj, "user_middleware"):
        return (
            "app.add_middleware(ShadowGuardMiddleware), "
            "from shadowguard.middleware.asgi import ShadowGuardMiddleware"
        )
    if hasattr(obj, "wsgi_app"):
        return "ShadowGuard(app), from shadowguard.middleware.flask import ShadowGuard"
    if _module(type(obj)).startswith("django.core.handlers"):
        return "put 'shadowguard.middleware.django.ShadowGuardMiddleware' first in MIDDLEWARE"
    return (
        "app = ShadowGuardMiddleware(app), from shadowguard.middleware.asgi (ASGI) "
        "or shadowguard.middleware.wsgi (WSGI)"
    )


def _options(options: object) -> dict[str, Any] | None:
    return dict(options) if isinstance(options, Mapping) and options else None


def _flask_options(app: Any) -> dict[str, Any] | None:
    extensions = getattr(app, "extensions", None)
    extension = extensions.get("shadowguard") if isinstance(extensions, Mapping) else None
    config = getattr(app, "config", None)
    return _options(getattr(extension, "options", None)) or _options(
        config.get("SHADOWGUARD") if isinstance(config, Mapping) else None
    )


def _django_options() -> dict[str, Any] | None:
    from django.conf import settings

    return _options(getattr(settings, "SHADOWGUARD", None))


def _django_middleware() -> str | None:
    conf = sys.modules.get("django.conf")
    if conf is None or not conf.settings.configured:
        return None
    from django.utils.module_loading import import_string

    for path in getattr(conf.settings, "MIDDLEWARE", None) or ():
        try:
            cls = import_string(path)
        except ImportError:
            continue
        if _ours(cls):
            return f"settings.MIDDLEWARE: {path}"
    return None


def _inspect(
    app: Any, obj: Any, pending: list[Any]
) -> tuple[str, str, dict[str, Any] | None] | None:
    """The middleware if ``obj`` is it or lists it; else queue what ``obj`` wraps."""
    if _ours(type(obj)):
        return _name(type(obj)), "", _flask_options(app)
    for entry in getattr(obj, "user_middleware", None) or ():
        cls = getattr(entry, "cls", None)
        if _ours(cls):
            return f"user_middleware: {_name(cls)}", "", _options(getattr(entry, "kwargs", None))
    pending.append(getattr(obj, "middleware_stack", None))
    for attribute in _CHAIN:
        inner = getattr(obj, attribute, None)
        # Flask's own wsgi_app is a method bound to the application: not a wrapper.
        if getattr(inner, "__self__", None) is not obj:
            pending.append(inner)
    return None


def wrapping(app: Any) -> Wrapping:
    """Where the middleware wraps ``app``, looking along its chain of wrapped applications."""
    kind = _kind(app)
    seen: set[int] = set()
    visited: list[Any] = []  # kept alive, so that no id in seen is reused meanwhile
    django = False
    pending = [app]
    while pending and len(seen) < _MAX_STEPS:
        obj = pending.pop()
        if id(obj) in seen or obj is None:
            continue
        seen.add(id(obj))
        visited.append(obj)
        django = django or _module(type(obj)).startswith("django.core.handlers")
        try:
            found = _inspect(app, obj, pending)
        except Exception:  # an object of the application's own that resists inspection
            continue
        if found is not None:
            return Wrapping(kind, *found)
    if django:
        listed = _django_middleware()
        if listed:
            return Wrapping(kind, listed, "", _django_options())
    return Wrapping(kind, None, _remedy(app))
