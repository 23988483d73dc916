"""shadowguard: take mirrored (shadow) production traffic without a single real side effect.

Detect shadow requests (``detect``), run code as shadow (``shadow``), ask whether the
current context is shadow (``is_shadow``), and guard side-effect channels
(``install``, ``side_effect``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shadowguard import integrations as _integrations
from shadowguard._config import Settings, configure, get_settings
from shadowguard._context import (
    Scope,
    Suppression,
    current_scope,
    is_shadow,
    propagate,
    record_suppression,
    shadow,
)
from shadowguard._detect import Detection, detect, host_is_shadow
from shadowguard._outbound import is_stub
from shadowguard._scopes import as_primary as detached
from shadowguard._side_effect import side_effect
from shadowguard._suppression import Action, Kind
from shadowguard.errors import ConfigError, ShadowGuardError, ShadowSideEffectBlocked

if TYPE_CHECKING:
    from shadowguard.experiment import Experiment, Result

__all__ = [
    "Action",
    "ConfigError",
    "Detection",
    "Experiment",
    "Kind",
    "Result",
    "Scope",
    "Settings",
    "ShadowGuardError",
    "ShadowSideEffectBlocked",
    "Suppression",
    "configure",
    "current_scope",
    "detached",
    "detect",
    "get_settings",
    "host_is_shadow",
    "install",
    "installed",
    "is_shadow",
    "is_stub",
    "propagate",
    "record_suppression",
    "shadow",
    "side_effect",
    "uninstall",
]

__version__ = "0.1.0.dev0"

_lock = threading.Lock()
_installed: list[str] = []


def install(*names: str, **options: Mapping[str, Any]) -> list[str]:
    """Install integrations and return the names now installed.

    With no ``names``, every integration whose library is importable is installed; a
    name given explicitly whose library is missing raises ImportError naming the extra.
    Per-integration options go by name: ``install(httpx={"allow": [...]})``. Settings
    are validated first, so a malformed environment fails here, at start-up.
    Idempotent: installing again changes nothing.
    """
    get_settings()
    unknown = set(options) - set(_integrations.INTEGRATIONS)
    if unknown:
        raise ValueError(
            f"install() got options for unknown integration(s) {', '.join(sorted(unknown))}: "
            f"accepted names are {', '.join(_integrations.INTEGRATIONS) or 'none yet'}"
        )
    if names and set(options) - set(names):
        raise ConfigError(
            f"install() got options for {', '.join(sorted(set(options) - set(names)))}, which "
            f"it was not asked to install: accepted names are the ones installed "
            f"({', '.join(names)}); name the integration too, or drop its options"
        )
    if names:
        chosen = list(names)
    else:
        chosen = [n for n, i in _integrations.INTEGRATIONS.items() if i.available() or n in options]
    modules = [(name, _integrations.load(name)) for name in chosen]
    with _lock:
        for name, module in modules:
            if name in _installed:
                continue
            module.install(**dict(options.get(name, {})))
            _installed.append(name)
        return list(_installed)


def uninstall(*names: str) -> None:
    """Uninstall integrations (all installed ones by default), restoring every patch."""
    errors: list[Exception] = []
    with _lock:
        for name in reversed(list(names) or list(_installed)):
            if name not in _installed:
                continue
            try:
                _integrations.load(name).uninstall()
            except Exception as exc:
                errors.append(exc)
            finally:
                # Never leave a name listed whose patches may be gone: a later install()
                # would skip it and leave the channel unguarded.
                _installed.remove(name)
    if errors:
        raise errors[0]


def installed() -> list[str]:
    """Names of the integrations installed through :func:`install`."""
    with _lock:
        return list(_installed)


def __getattr__(name: str) -> Any:
    # Experiments are imported on first use: most services never run one.
    if name in ("Experiment", "Result"):
        from shadowguard import experiment

        return getattr(experiment, name)
    raise AttributeError(f"module 'shadowguard' has no attribute {name!r}")
