"""URLs as outbound rules see them: normalized for matching, redacted for recording.

A rule's URL pattern (``https://api.example.com/v1/*``) matches the normalized URL: scheme
and host lower-cased, default port dropped, no userinfo, query or fragment. What a guard
records keeps query names but never their values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from shadowguard.errors import ConfigError

__all__ = ["UrlMatcher", "glob", "normalize_url", "redact_url", "url_pattern"]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_REDACTED = "***"


def _glob_source(pattern: str, star: str = ".*") -> str:
    return star.join(re.escape(part) for part in pattern.split("*"))


def glob(pattern: str) -> re.Pattern[str]:
    """``*`` matches any run of characters; everything else is literal."""
    return re.compile(_glob_source(pattern), re.DOTALL)


def _url_glob(pattern: str) -> re.Pattern[str]:
    # Scheme and host compare case-insensitively (they are normalized to lower case);
    # the path keeps its case, as servers treat it. A ``*`` in the host part stops at
    # the first ``/``, so ``https://*.partner.test/*`` cannot match a URL whose path
    # merely contains ``.partner.test/``.
    scheme, _, rest = pattern.partition("://")
    authority, _, path = rest.partition("/")
    host_part = _glob_source(f"{scheme.lower()}://{authority.lower()}/", "[^/]*")
    return re.compile(host_part + _glob_source(path), re.DOTALL)


def _host_of(parts: SplitResult) -> str:
    host = (parts.hostname or "").rstrip(".")
    return f"[{host}]" if ":" in host else host


def normalize_url(url: str) -> tuple[str, str, str]:
    """``(host, url without userinfo/query/fragment, query)`` as rules match them.

    Scheme and host are lowercased, a default port is dropped, an empty path becomes ``/``.
    An unparsable URL gives empty strings, which no allow rule matches.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "", "", ""
    scheme = parts.scheme.lower()
    host = _host_of(parts)
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return host.strip("[]"), f"{scheme}://{netloc}{parts.path or '/'}", parts.query


def redact_url(url: str) -> str:
    """``url`` without userinfo or fragment, every query value replaced by ``***``.

    Query names are kept (they say which endpoint variant was called); values are not,
    since any of them may be a token, key or signature.
    """
    _, base, query = normalize_url(url)
    if not base:
        return "<unparsable URL>"
    if not query:
        return base
    names = [pair.split("=", 1)[0] for pair in query.split("&") if pair]
    return base + "?" + "&".join(f"{name}={_REDACTED}" for name in names)


@dataclass(frozen=True)
class UrlMatcher:
    pattern: re.Pattern[str]
    with_query: bool

    def __call__(self, url: str, query: str) -> bool:
        if self.with_query and query:
            return self.pattern.fullmatch(f"{url}?{query}") is not None
        return self.pattern.fullmatch(url) is not None


def url_pattern(value: str | re.Pattern[str] | None, what: str) -> UrlMatcher | None:
    if value is None:
        return None
    if isinstance(value, re.Pattern):
        return UrlMatcher(value, with_query=True)
    if not isinstance(value, str) or "://" not in value:
        raise ConfigError(
            f"{what} url={value!r} is not valid: accepted values are a URL pattern with "
            "scheme ('https://api.example.com/v1/*', '*' matches anything) or a compiled regex"
        )
    return UrlMatcher(_url_glob(value), with_query=False)
