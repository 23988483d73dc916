"""URLs and hosts as outbound rules see them: normalized for matching, redacted for recording.

A rule's URL pattern (``https://api.example.com/v1/*``) matches the normalized URL: scheme
and host lower-cased (an international host in its ASCII form), default port dropped, no
userinfo, query or fragment. A server may resolve ``..``, ``%2e%2e`` and ``//`` in a path
before it routes: :func:`canonical_url` is the URL as such a server reads it, and a rule
that lets a request out must hold for both readings. Host and URL patterns that could
never match a normalized URL are refused when the rule is made. What a guard records
keeps query names but never their values.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, urlsplit

from shadowguard.errors import ConfigError

__all__ = [
    "REDACTED",
    "UrlMatcher",
    "canonical_url",
    "glob",
    "host_pattern",
    "normalize_url",
    "redact_url",
    "url_of",
    "url_pattern",
]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
#: What a redacted value (a query value, a task argument) becomes in a record.
REDACTED = "***"
_ENCODED_DOT = re.compile(r"%2e", re.IGNORECASE)
# A slash or backslash a server may decode (or read) as a separator: no canonical reading.
_AMBIGUOUS_SEPARATOR = re.compile(r"%2f|%5c|\\", re.IGNORECASE)
# A host a URL carries as it is: a registered name without percent-encoding.
_PLAIN_HOST = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=-]+")
_HOST_LABEL = re.compile(r"[a-z0-9_*](?:[a-z0-9_*-]*[a-z0-9_*])?")
_HOST_FORMS = (
    "accepted forms are a host name ('api.example.com'), a pattern ('*.example.com') or an "
    "IP address ('10.0.0.7', '::1'); a scheme, port or path is not part of host=: give "
    "url='https://api.example.com:8443/v1/*' instead"
)


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


def _ascii_host(host: str) -> str:
    """``host`` lower-cased, without trailing dots, in its ASCII (IDNA) form; IPv6
    compressed; "" if it has no such form."""
    host = host.lower().rstrip(".")
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host).compressed
        except ValueError:
            return ""
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return ""
    return host


def _host_of(parts: SplitResult) -> str:
    host = _ascii_host(parts.hostname or "")
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


def canonical_url(base: str) -> str | None:
    """``base`` (a normalized URL) as a server that decodes ``%2e``, resolves dot segments
    and merges empty ones routes it; None if a separator is encoded (``%2f``, ``%5c``) or a
    backslash, which servers read differently."""
    scheme, sep, rest = base.partition("://")
    authority, _, path = rest.partition("/")
    if not sep or _AMBIGUOUS_SEPARATOR.search(path):
        return None if sep else base
    segments: list[str] = []
    parts = _ENCODED_DOT.sub(".", path).split("/")
    for segment in parts:
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in ("", "."):
            segments.append(segment)
    trailing = parts[-1] in ("", ".", "..") and bool(segments)
    return f"{scheme}://{authority}/{'/'.join(segments)}{'/' if trailing else ''}"


def url_of(scheme: str, host: str, port: int | None, target: str) -> str:
    """The URL of a request that a client sends as ``target`` to ``host:port``, for judging.

    ``target`` is the request target as on the request line: a path (``/a?b=1``), or to a
    forwarding proxy an absolute URL, which is the URL itself. The host is the one the
    client connects to; written into a URL it keeps its meaning: an IPv6 address gets
    brackets, and a host a URL would read differently (``a@b``, ``a\\b``, a space) is
    percent-encoded, so no rule can read another host out of it.
    """
    lowered = target[:8].lower()
    if lowered.startswith(("http://", "https://")):
        return target
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if isinstance(literal, ipaddress.IPv6Address):
        host = f"[{literal.compressed}]"
    elif literal is None:
        if not host.isascii():
            with contextlib.suppress(UnicodeError):
                host = host.encode("idna").decode("ascii")
        if not _PLAIN_HOST.fullmatch(host):
            host = quote(host, safe="", errors="backslashreplace")
    authority = host if port is None else f"{host}:{port}"
    path = target if target.startswith("/") else f"/{target}"
    return f"{scheme}://{authority}{path}"


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
    return base + "?" + "&".join(f"{name}={REDACTED}" for name in names)


@dataclass(frozen=True)
class UrlMatcher:
    pattern: re.Pattern[str]
    with_query: bool

    def __call__(self, url: str, query: str) -> bool:
        if self.with_query and query:
            return self.pattern.fullmatch(f"{url}?{query}") is not None
        return self.pattern.fullmatch(url) is not None


def host_pattern(value: object, what: str) -> str:
    """A host rule as it is matched (lower case, ASCII, no trailing dot), or ConfigError
    for one that could never match a normalized URL's host."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{what} host={value!r} is not valid: {_HOST_FORMS}")
    host = value.strip()
    inner = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" in inner and "*" not in inner:
        ipv6 = _ascii_host(inner)
        if ipv6:
            return ipv6
    labels = [
        label if "*" in label else _ascii_host(label) or "\0"
        for label in host.lower().rstrip(".").split(".")
    ]
    if not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise ConfigError(f"{what} host={value!r} is not valid: {_HOST_FORMS}")
    return ".".join(labels)


def _url_authority(authority: str, scheme: str, value: str, what: str) -> str:
    if not authority or "@" in authority:
        raise ConfigError(
            f"{what} url={value!r} is not valid: give a host after the scheme, and no user "
            "name (URLs are compared without one)"
        )
    host, port = authority, ""
    if authority.startswith("["):
        host, _, rest = authority.partition("]")
        host, port = host + "]", rest.removeprefix(":")
    elif ":" in authority:
        host, _, port = authority.partition(":")
    if port and not (port.isdigit() or port == "*"):
        raise ConfigError(f"{what} url={value!r} is not valid: the port must be a number or '*'")
    if port.isdigit() and int(port) == _DEFAULT_PORTS.get(scheme):
        port = ""  # URLs are compared without their scheme's default port
    if host != "*":
        pattern = host_pattern(host, what)
        host = f"[{pattern}]" if ":" in pattern else pattern
    return f"{host}:{port}" if port else host


def url_pattern(value: str | re.Pattern[str] | None, what: str) -> UrlMatcher | None:
    """A rule's ``url=`` as it is matched, or ConfigError for a pattern that could never
    match a normalized URL (no scheme or host, a user name, a query or fragment, a dot
    segment, whitespace)."""
    if value is None:
        return None
    if isinstance(value, re.Pattern):
        return UrlMatcher(value, with_query=True)
    if not isinstance(value, str) or "://" not in value:
        raise ConfigError(
            f"{what} url={value!r} is not valid: accepted values are a URL pattern with "
            "scheme ('https://api.example.com/v1/*', '*' matches anything) or a compiled regex"
        )
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ConfigError(f"{what} url={value!r} is not valid: it contains whitespace")
    if "?" in value or "#" in value:
        raise ConfigError(
            f"{what} url={value!r} is not valid: URL patterns are compared without query "
            "and fragment; to match the query give a compiled regex (re.compile(...))"
        )
    scheme, _, rest = value.partition("://")
    authority, slash, path = rest.partition("/")
    if any(s in (".", "..") for s in _ENCODED_DOT.sub(".", path).split("/")):
        raise ConfigError(
            f"{what} url={value!r} is not valid: a path with '.' or '..' segments never "
            "matches (URLs are matched with their dot segments resolved)"
        )
    scheme = scheme.lower()
    normalized = f"{scheme}://{_url_authority(authority, scheme, value, what)}{slash}{path}"
    return UrlMatcher(_url_glob(normalized), with_query=False)
