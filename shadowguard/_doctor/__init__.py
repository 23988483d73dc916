"""``shadowguard doctor``: what would let a shadow request act, in a running application.

It imports the application (calling a factory if given one), then checks, in order:

- :mod:`._settings`: the settings (a malformed one is a ``ConfigError``, exit 2) and
  combinations of them that leave shadow traffic undetected;
- :mod:`._middleware`: that a shadowguard middleware wraps the application;
- :mod:`._source`: the side-effect libraries the application's own code imports
  (:mod:`._libraries`), each guarded by an installed integration, or by ``@side_effect``
  around every use, or not;
- :mod:`._objects`: live clients (producers, HTTP clients, engines, sessions, Django
  connections), guarded or created before ``install()`` and left out.

:mod:`._report` holds the report and renders it. ``ok`` means nothing found is
unguarded; what doctor cannot see is listed, never passed over.
"""

from __future__ import annotations

import sys
from dataclasses import asdict

import shadowguard
from shadowguard import integrations
from shadowguard._doctor._app import AppError, LoadedApp, load
from shadowguard._doctor._libraries import LIBRARIES, Library
from shadowguard._doctor._loaded import Holders
from shadowguard._doctor._middleware import wrapping
from shadowguard._doctor._objects import live_objects
from shadowguard._doctor._report import Finding, Report, render
from shadowguard._doctor._settings import hygiene
from shadowguard._doctor._source import scan
from shadowguard._patching import active_patch_sets
from shadowguard.contract import Settings, get_settings

__all__ = ["AppError", "Report", "diagnose", "render"]


def _active() -> set[str]:
    return set(shadowguard.installed()) | set(active_patch_sets())


def diagnose(app: str | None = None) -> Report:
    """Check the settings and, if ``app`` is given, the application.

    Raises ConfigError for a malformed setting and :class:`AppError` for an application
    that cannot be loaded (both are bad input: exit status 2).
    """
    get_settings()  # the environment first: a malformed value is bad input, before any import
    loaded = load(app) if app else None
    # What the application runs with: it may have called shadowguard.configure() at import.
    settings = get_settings()
    shown = {k: (sorted(v) if isinstance(v, frozenset) else v) for k, v in asdict(settings).items()}
    if settings.marker_secret:
        shown["marker_secret"] = "***"
    report = Report(settings=shown)
    problems, warnings = hygiene(settings)
    report.unguarded += [Finding("settings", p) for p in problems]
    report.cannot_see += [Finding("settings", w) for w in warnings]
    active = _active()
    imported: set[Library] = set()
    if loaded is not None:
        report.app = app
        report.factory = loaded.factory
        imported = _libraries(report, loaded, active)
        _middleware(report, loaded, settings)
        _clients(report, loaded, active)
    for name, integration in integrations.INTEGRATIONS.items():
        used = None
        if loaded is not None:
            used = any(name in library.guarded_by for library in imported)
        report.integrations[name] = {
            "library": integration.requires,
            "importable": integration.available(),
            "installed": name in active,
            "used_by_app": used,
            "extra": integration.extra,
        }
    return report


def _libraries(report: Report, loaded: LoadedApp, active: set[str]) -> set[Library]:
    """Classify each known library the application imports; return those it imports."""
    usage = scan(loaded.own_modules, loaded.root)
    own = {id(module) for module in loaded.own_modules}
    for library, use in usage.items():
        if not use.imported_at or id(sys.modules.get(library.module)) in own:
            continue  # not imported, or a module of the application's own with that name
        integration = next((g for g in library.guarded_by if g in active), None)
        if integration is not None:
            report.guarded[library.module] = f"by the {integration} integration"
        elif use.only_in_side_effect:
            report.guarded[library.module] = "every use is inside @side_effect"
            if not library.guarded_by:
                report.cannot_see.append(
                    Finding(
                        library.module,
                        f"{library.does} that no guard sees; every use found is inside "
                        "@side_effect, which skips it in shadow (a call made another way is not)",
                        where=", ".join(use.imported_at),
                    )
                )
        else:
            places = use.outside or use.imported_at
            why = "no integration is installed for it" if library.guarded_by else "no guard sees it"
            report.unguarded.append(
                Finding(
                    library.module,
                    f"{library.does}: {why}, and it is used outside @side_effect",
                    library.remedy,
                    ", ".join(places[:5]) + (" ..." if len(places) > 5 else ""),
                )
            )
    # Loaded, though not by the application's code: named unless only shadowguard, the
    # libraries the application imports (reported above) or guarded clients hold it.
    imported = {library for library, use in usage.items() if use.imported_at}
    covered = {"shadowguard"} | {library.module.partition(".")[0] for library in imported}
    covered |= {
        library.module.partition(".")[0]
        for library in LIBRARIES
        if any(g in active for g in library.guarded_by)
    }
    holding = Holders()
    for library in LIBRARIES:
        if library in imported or library.raw or library.module not in sys.modules:
            continue
        if any(g in active for g in library.guarded_by):
            continue
        holders = holding.uncovered(library.module, covered)
        if holders:
            report.cannot_see.append(
                Finding(
                    library.module,
                    f"{library.does}: loaded by {', '.join(holders)}, not by the application's "
                    "own code; doctor cannot tell whether anything calls it in shadow",
                    library.remedy,
                )
            )
    return {
        library
        for library, use in usage.items()
        if use.imported_at and id(sys.modules.get(library.module)) not in own
    }


def _middleware(report: Report, loaded: LoadedApp, settings: Settings) -> None:
    if loaded.obj is None:
        report.app_kind = f"module {loaded.module.__name__}"
        report.cannot_see.append(
            Finding(
                "middleware",
                "no application object (the module has no app, application, create_app or "
                "make_app): not checked",
                "name it: shadowguard doctor module:app",
            )
        )
        return
    found = wrapping(loaded.obj)
    report.app_kind = found.kind
    if found.options:
        # The middleware's own settings: validated as it validates them (ConfigError: exit 2).
        own = Settings.from_env(**found.options)
        report.middleware_options = sorted(found.options)
        problems, warnings = hygiene(own, from_env=False)
        report.unguarded += [Finding("middleware options", p) for p in problems]
        report.cannot_see += [Finding("middleware options", w) for w in warnings]
        settings = own
    if found.found:
        report.middleware = found.found
    elif settings.forced is not None:
        report.middleware = f"none, not needed: SHADOW_MODE decides every request ({settings.mode})"
    elif not callable(loaded.obj):
        report.cannot_see.append(
            Finding("middleware", f"{found.kind} is not an ASGI or WSGI application: not checked")
        )
    else:
        report.unguarded.append(
            Finding(
                "middleware",
                f"no shadowguard middleware wraps {found.kind}: mirrored requests are never "
                "detected as shadow, so every guard stays idle",
                found.remedy,
            )
        )


def _clients(report: Report, loaded: LoadedApp, active: set[str]) -> None:
    for client in live_objects(active, loaded.own_modules):
        report.live_clients.append(asdict(client))
        if not client.guarded:
            report.unguarded.append(
                Finding(
                    client.kind,
                    f"{client.name} is not guarded (created before install(), or never guarded)",
                    client.remedy,
                )
            )
