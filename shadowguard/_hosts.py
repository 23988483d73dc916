"""Envoy's ``-shadow`` host grammar: a leaf module both settings and detection use."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["SHADOW_SUFFIX", "host_is_shadow"]

SHADOW_SUFFIX = "-shadow"
_PORT = re.compile(r"^[0-9]{1,5}$")
# RFC 3986 reg-name (unreserved, sub-delims, pct-encoded) and IPv4 literals; underscores
# appear in real service names.
_REG_NAME = re.compile(r"^[a-z0-9_.~!$&'()*+,;=%-]+$")
_IPV6 = re.compile(r"^[0-9a-f:.]+(%[a-z0-9_.~-]+)?$")


def _split_authority(authority: str) -> tuple[str, str | None] | None:
    """Split ``host[:port]`` into host and port; None if malformed."""
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            return None
        rest = authority[end + 1 :]
        # Envoy puts the suffix after the bracket: "[::1]-shadow:8080".
        host_end = rest.find(":")
        host = authority[: end + 1] + (rest if host_end < 0 else rest[:host_end])
        port = None if host_end < 0 else rest[host_end + 1 :]
    else:
        if authority.count(":") > 1:
            return None
        host, sep, port_part = authority.partition(":")
        port = port_part if sep else None
    if port is not None and not _PORT.match(port):
        return None
    return host, port


def _shadow_base(host: str) -> str | None:
    """The host without its ``-shadow`` suffix, or None when it has none or is malformed."""
    host = host.rstrip(".")
    if not host.endswith(SHADOW_SUFFIX):
        return None
    base = host[: -len(SHADOW_SUFFIX)].rstrip(".")
    if base.startswith("["):
        if not base.endswith("]") or not _IPV6.match(base[1:-1]):
            return None
        return base
    if not base or not _REG_NAME.match(base):
        return None
    return base


def host_is_shadow(host: str, *, allowed: Iterable[str] | None = None) -> bool:
    """Does ``host`` (a Host or ``:authority`` value) carry Envoy's ``-shadow`` suffix?

    The suffix sits before any port (``api-shadow:8080``, ``[::1]-shadow:8080``).
    Case-insensitive, a trailing dot is tolerated, and anything malformed is simply not
    shadow. With ``allowed``, only those exact shadow host names (without port) count.
    """
    try:
        if not isinstance(host, str) or not host.isascii():
            return False
        split = _split_authority(host.strip().lower())
        if split is None or _shadow_base(split[0]) is None:
            return False
        if allowed is not None:
            return split[0].rstrip(".") in {h.strip().lower().rstrip(".") for h in allowed}
        return True
    except Exception:
        return False
