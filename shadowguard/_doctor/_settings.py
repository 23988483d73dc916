"""Settings hygiene: combinations each valid alone that leave shadow traffic undetected.

Each value is validated by :class:`shadowguard.contract.Settings` itself (a secret no
header can carry, a shadow host that could never match: ``ConfigError``); doctor adds
only what spans several settings.
"""

from __future__ import annotations

from shadowguard._config import (
    ENV_BAGGAGE,
    ENV_HOST_SUFFIX,
    ENV_MARKER_HEADER,
    ENV_MARKER_SECRET,
    ENV_SHADOW_HOSTS,
    ENV_SHADOW_MODE,
)
from shadowguard.contract import Settings

__all__ = ["hygiene"]


def hygiene(settings: Settings, source: str) -> tuple[list[str], list[str]]:
    """Problems (shadow requests would run as primary) and warnings, for ``source``'s settings."""
    problems: list[str] = []
    warnings: list[str] = []
    if settings.mode == "primary":
        warnings.append(
            f"{source}: {ENV_SHADOW_MODE} is false, so every request runs as primary and the "
            "guards never act: right for the primary deployment only, never for the shadow one"
        )
        return problems, warnings
    if settings.mode == "shadow":
        return problems, warnings
    if not settings.marker_header and not settings.host_suffix and not settings.baggage:
        problems.append(
            f"{source}: no request can be detected as shadow: the marker header is disabled "
            f"({ENV_MARKER_HEADER}), the host suffix is off ({ENV_HOST_SUFFIX}) and baggage is "
            f"off ({ENV_BAGGAGE}); enable one of them, or set {ENV_SHADOW_MODE}=true in the "
            "shadow deployment"
        )
    if settings.marker_secret and not settings.marker_header:
        problems.append(
            f"{source}: {ENV_MARKER_SECRET} is set but the marker header is disabled "
            f"({ENV_MARKER_HEADER} is empty): the secret can never match; name the header the "
            "proxy adds, or drop the secret"
        )
    if settings.shadow_hosts and not settings.host_suffix:
        problems.append(
            f"{source}: {ENV_SHADOW_HOSTS} is set but {ENV_HOST_SUFFIX} is off: the shadow "
            "hosts are never consulted; turn the host suffix on, or drop the hosts"
        )
    return problems, warnings
