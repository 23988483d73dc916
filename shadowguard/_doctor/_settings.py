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


_FIELDS = {
    ENV_SHADOW_MODE: "mode",
    ENV_MARKER_HEADER: "marker_header",
    ENV_MARKER_SECRET: "marker_secret",
    ENV_HOST_SUFFIX: "host_suffix",
    ENV_SHADOW_HOSTS: "shadow_hosts",
    ENV_BAGGAGE: "baggage",
}


def hygiene(settings: Settings, *, from_env: bool = True) -> tuple[list[str], list[str]]:
    """Problems (shadow requests would run as primary) and warnings about ``settings``.

    Settings are named by their environment variable, or with ``from_env=False`` by their
    field (middleware options).
    """
    names = {env: env if from_env else field for env, field in _FIELDS.items()}
    mode, header, secret = (
        names[ENV_SHADOW_MODE],
        names[ENV_MARKER_HEADER],
        names[ENV_MARKER_SECRET],
    )
    suffix, hosts, baggage = names[ENV_HOST_SUFFIX], names[ENV_SHADOW_HOSTS], names[ENV_BAGGAGE]
    problems: list[str] = []
    warnings: list[str] = []
    if settings.mode == "primary":
        warnings.append(
            f"{mode} is primary (false), so every request runs as primary and the "
            "guards never act: right for the primary deployment only, never for the shadow one"
        )
        return problems, warnings
    if settings.mode == "shadow":
        return problems, warnings
    if not settings.marker_header and not settings.host_suffix and not settings.baggage:
        problems.append(
            f"no request can be detected as shadow: the marker header is disabled "
            f"({header}), the host suffix is off ({suffix}) and baggage is "
            f"off ({baggage}); enable one of them, or set {mode}=true in the "
            "shadow deployment"
        )
    if settings.marker_secret and not settings.marker_header:
        problems.append(
            f"{secret} is set but the marker header is disabled "
            f"({header} is empty): the secret can never match; name the header the "
            "proxy adds, or drop the secret"
        )
    if settings.shadow_hosts and not settings.host_suffix:
        problems.append(
            f"{hosts} is set but {suffix} is off: the shadow "
            "hosts are never consulted; turn the host suffix on, or drop the hosts"
        )
    return problems, warnings
