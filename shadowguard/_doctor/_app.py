"""Import the application doctor examines: ``module``, ``module:app`` or a factory.

``module:create_app`` is called when it is a function that needs no argument (one taking
WSGI's or ASGI's arguments is the application itself); ``'module:create_app()'`` always is.
``module`` alone means its ``app`` or ``application``, else its ``create_app`` or
``make_app`` factory, as Flask's command looks for them. The modules the import brought in
that live outside the interpreter's library folders are the application's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import os
import re
import sys
import sysconfig
import traceback
from dataclasses import dataclass
from types import ModuleType
from typing import Any

__all__ = ["AppError", "LoadedApp", "load"]

_MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z")
_ATTRIBUTE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(\(\))?\Z")
_SPEC_ACCEPTED = "module, module:app, module:create_app or 'module:create_app()'"


class AppError(Exception):
    """The application could not be loaded: one line saying why, for exit status 2."""


@dataclass
class LoadedApp:
    """The imported module, the application object (None for a bare module), its own modules.

    ``root`` is the folder locations are shown relative to (the working directory).
    """

    spec: str
    module: ModuleType
    obj: Any
    factory: bool
    own_modules: list[ModuleType]
    root: str


def load(spec: str) -> LoadedApp:
    """Import ``spec``; raises AppError with one line for a bad path or a failing import."""
    module_name, _, attribute = spec.strip().partition(":")
    if "/" in spec or "\\" in spec or module_name.endswith(".py"):
        raise AppError(
            f"application {spec!r} is not valid: give a module path, not a file (run doctor "
            f"from the folder that holds it); accepted forms are {_SPEC_ACCEPTED}"
        )
    if not _MODULE.match(module_name) or (attribute and not _ATTRIBUTE.match(attribute)):
        raise AppError(f"application {spec!r} is not valid: accepted forms are {_SPEC_ACCEPTED}")
    if "" not in sys.path and "." not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, "")
    before = set(sys.modules)
    # The application may print at import: keep stdout for the report (``--json``).
    with contextlib.redirect_stdout(sys.stderr):
        module = _import(module_name)
        obj, factory = (
            _resolve(spec, module, attribute) if attribute else _default_app(spec, module)
        )
        _import_django_urls(spec)
    return LoadedApp(spec, module, obj, factory, _own_modules(module, before), os.getcwd())


def _where(exc: BaseException) -> str:
    """`` (at app.py:3)``: the innermost frame of the application's own code."""
    if isinstance(exc, SyntaxError):
        return ""  # its message names the file and line already
    skip = (*_library_dirs(), os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep)
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not os.path.realpath(f.filename).startswith(skip) and not f.filename.startswith("<")
    ]
    if not frames:
        return ""
    path = frames[-1].filename
    if path.startswith(os.getcwd() + os.sep):
        path = os.path.relpath(path)
    return f" (at {path}:{frames[-1].lineno})"


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise AppError(
                f"could not import {name}: no module named {exc.name!r} (run doctor from the "
                "folder that holds it, or add that folder to PYTHONPATH)"
            ) from None
        raise AppError(
            f"could not import {name}: {type(exc).__name__}: {exc}{_where(exc)}"
        ) from None
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise AppError(
            f"could not import {name}: {type(exc).__name__}: {exc}{_where(exc)}"
        ) from None


def _resolve(spec: str, module: ModuleType, attribute: str) -> tuple[Any, bool]:
    call = attribute.endswith("()")
    path = attribute.removesuffix("()")
    obj: Any = module
    for part in path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppError(
                f"application {spec!r}: {module.__name__} has no attribute {path!r}"
            ) from None
        except Exception as exc:
            raise AppError(
                f"application {spec!r}: reading {part!r} raised {type(exc).__name__}: {exc}"
                f"{_where(exc)}"
            ) from None
    if call or _is_factory(spec, obj):
        return _call_factory(spec, obj), True
    return obj, False


def _is_factory(spec: str, obj: Any) -> bool:
    """A plain function taking no argument; one taking WSGI's or ASGI's is the application."""
    if not inspect.isfunction(obj):
        return False
    required = _required(obj)
    if not required:
        return True
    if len(required) in (2, 3):  # (environ, start_response) or (scope, receive, send)
        return False
    raise AppError(
        f"application {spec!r}: {obj.__qualname__} needs argument(s) {', '.join(required)}, "
        "so it is neither a WSGI/ASGI application nor a factory doctor can call: give the "
        "application object, or a factory whose arguments have defaults"
    )


def _required(obj: Any) -> list[str]:
    try:
        parameters = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return []
    return [
        p.name
        for p in parameters
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]


def _call_factory(spec: str, factory: Any) -> Any:
    if not callable(factory):
        raise AppError(f"application {spec!r}: {type(factory).__name__} object is not callable")
    required = _required(factory)
    if required:
        raise AppError(
            f"application {spec!r}: the factory needs argument(s) {', '.join(required)}; doctor "
            "calls a factory without arguments: give the application object, or a factory "
            "whose arguments have defaults"
        )
    try:
        app = factory()
        if inspect.isawaitable(app):
            app = asyncio.run(_awaited(app))
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise AppError(
            f"application {spec!r}: the factory raised {type(exc).__name__}: {exc}{_where(exc)}"
        ) from None
    if app is None:
        raise AppError(f"application {spec!r}: the factory returned None, not an application")
    return app


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _default_app(spec: str, module: ModuleType) -> tuple[Any, bool]:
    """``module`` alone: its ``app`` or ``application``, else a ``create_app`` or ``make_app``
    factory (the names Flask's command looks for); None if it has none."""
    for name in ("app", "application"):
        obj = getattr(module, name, None)
        if obj is not None and not isinstance(obj, ModuleType):
            return obj, False
    for name in ("create_app", "make_app"):
        factory = getattr(module, name, None)
        if inspect.isfunction(factory):
            return _call_factory(f"{spec}:{name}", factory), True
    return None, False


def _import_django_urls(spec: str) -> None:
    """Django imports the views (and what they import) at the first request: do it now."""
    apps = sys.modules.get("django.apps")
    if apps is None or not apps.apps.ready:
        return
    from django.conf import settings

    urlconf = getattr(settings, "ROOT_URLCONF", None)
    if isinstance(urlconf, str):
        try:
            importlib.import_module(urlconf)
        except Exception as exc:
            raise AppError(
                f"application {spec!r}: could not import ROOT_URLCONF {urlconf!r}: "
                f"{type(exc).__name__}: {exc}{_where(exc)}"
            ) from None


def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    found = {
        os.path.realpath(paths[key])
        for key in ("stdlib", "platstdlib", "purelib", "platlib")
        if key in paths
    }
    found.update(os.path.realpath(p) for p in sys.path if p.rstrip(os.sep).endswith("-packages"))
    return tuple(sorted(d + os.sep for d in found))


def _own_modules(module: ModuleType, before: set[str]) -> list[ModuleType]:
    """The application's modules: its own package, and what it imported from outside libraries."""
    top = module.__name__.partition(".")[0]
    libraries = _library_dirs()
    own: list[ModuleType] = []
    for name, loaded in list(sys.modules.items()):
        if not issubclass(type(loaded), ModuleType) or name.partition(".")[0] == "shadowguard":
            continue  # not a module (a lazy stand-in some libraries put there), or ours
        if name == top or name.startswith(top + "."):
            own.append(loaded)
            continue
        path = vars(loaded).get("__file__")
        if name in before or not isinstance(path, str):
            continue
        if not os.path.realpath(path).startswith(libraries):
            own.append(loaded)
    return own
