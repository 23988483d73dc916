"""requests and urllib3: in shadow, requests are stubbed unless an allow rule names them.

Two seams, both patched by :func:`install`:

- ``requests.Session.get_adapter``: every request of every session (``requests.get`` too)
  and every redirect hop asks it for the adapter, whatever is mounted. In shadow it
  returns the adapter wrapped in a guard; the stub is a real ``requests.Response``.
- ``urllib3.HTTPConnectionPool.urlopen``: every request urllib3 sends, through a
  ``PoolManager``, a ``ProxyManager``, ``urllib3.request()`` or a pool used directly.

On the primary path each calls the original and nothing else.

:func:`guard` guards one ``requests.Session`` in place, with or without ``install()``,
and returns that same session: it gets an instance attribute that shadows the class's
``get_adapter``, with the install rules or rules of its own.
"""

from __future__ import annotations

import inspect
import io
import sys
from collections.abc import Iterable
from http.client import responses
from typing import Any, TypeVar
from urllib.parse import urlsplit

from shadowguard._outbound import (
    BLOCK,
    STUB_HEADER,
    Allow,
    Decision,
    Default,
    InstalledRules,
    OutboundRequest,
    Reply,
    Rules,
    Stub,
    add_marker,
    guard_rules,
    judged_above,
    mark_stub,
    passing_down,
    text_headers,
)
from shadowguard.contract import PROCESS, Patches, mark_wrapped, scope_now, unwrapped
from shadowguard.errors import missing_extra_error

try:
    import urllib3
    from urllib3._collections import HTTPHeaderDict
    from urllib3.connectionpool import HTTPConnectionPool
except ImportError:  # pragma: no cover - exercised only without the extra
    raise missing_extra_error("urllib3", "requests") from None

__all__ = ["BLOCK", "STUB_HEADER", "Allow", "Reply", "Stub", "guard", "install", "uninstall"]

S = TypeVar("S")

_patches = Patches("requests")


def _body(body: object) -> bytes | None:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return None


def _urllib3_response(reply: Reply, method: str, url: str, **options: Any) -> Any:
    status, headers, body = reply.render(method)
    response = urllib3.HTTPResponse(
        body=io.BytesIO(body),
        headers=HTTPHeaderDict(headers),
        status=status,
        reason=responses.get(status, ""),
        preload_content=options.get("preload_content", True),
        decode_content=options.get("decode_content", True),
        request_method=method,
        request_url=url,
    )
    return mark_stub(response)


class _GuardedAdapter:
    """An adapter wrapper used only in shadow: send allowed reads marked, stub the rest.

    Other attributes are read from the real adapter, so code that inspects
    ``session.get_adapter(url)`` sees the same values in shadow.
    """

    def __init__(self, inner: Any, rules: Rules) -> None:
        self._shadowguard_inner = inner
        self._shadowguard_rules = rules

    def __getattr__(self, name: str) -> Any:
        return getattr(self._shadowguard_inner, name)

    def send(self, request: Any, **kwargs: Any) -> Any:
        rules = self._shadowguard_rules
        url = request.url.decode() if isinstance(request.url, bytes) else request.url
        decision = rules.decide(request.method or "GET", url, request.headers)
        if decision.allowed:
            add_marker(request.headers, decision.forward_secret)
            # urllib3 and http.client below send it unjudged (a session with own rules).
            with passing_down(request.method or "GET", url):
                response = self._shadowguard_inner.send(request, **kwargs)
        else:
            import requests.adapters

            outbound = OutboundRequest(
                request.method or "GET",
                url,
                text_headers(request.headers),
                _body(request.body),
                "requests",
            )
            reply = rules.answer(decision, outbound)
            raw = _urllib3_response(reply, outbound.method, url, preload_content=False)
            response = requests.adapters.HTTPAdapter.build_response(self, request, raw)  # type: ignore[arg-type]
            mark_stub(response)
        # Digest auth resends through ``response.connection.send``: keep it guarded.
        response.connection = self
        return response

    def close(self) -> None:
        self._shadowguard_inner.close()


def _get_adapter_hook(original: Any, rules: Any) -> Any:

    def get_adapter(self: Any, url: str) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, url)
        return _GuardedAdapter(original(self, url), rules())

    return mark_wrapped(get_adapter, original)


def _urlopen_hook(original: Any) -> Any:
    signature = inspect.signature(original)

    def urlopen(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, method, url, *args, **kwargs)
        full_url = url
        if not urlsplit(url).scheme:
            full_url = f"{self.scheme}://{_authority(self)}{url}"
        if judged_above(method, full_url):
            return original(self, method, url, *args, **kwargs)
        bound = signature.bind(self, method, url, *args, **kwargs)
        bound.apply_defaults()
        arguments = bound.arguments
        headers = HTTPHeaderDict(
            self.headers if arguments["headers"] is None else arguments["headers"]
        )
        decision = _installed.rules.decide(method, full_url, headers)
        if decision.allowed:
            add_marker(headers, decision.forward_secret)
            arguments["headers"] = headers
            # http.client below sends it unjudged; a redirect urllib3 follows comes back here.
            with passing_down(method, full_url):
                return original(*bound.args, **bound.kwargs)
        return _urllib3_stub(decision, method, full_url, headers, arguments)

    return mark_wrapped(urlopen, original)


def _authority(pool: Any) -> str:
    host = pool.host if ":" not in pool.host else f"[{pool.host}]"
    return host if pool.port is None else f"{host}:{pool.port}"


def _urllib3_stub(
    decision: Decision, method: str, url: str, headers: Any, arguments: dict[str, Any]
) -> Any:
    outbound = OutboundRequest(
        method, url, text_headers(headers), _body(arguments["body"]), "urllib3"
    )
    reply = _installed.rules.answer(decision, outbound)
    return _urllib3_response(
        reply,
        method,
        url,
        preload_content=arguments["preload_content"],
        decode_content=arguments["decode_content"],
    )


def guard(
    session: S,
    *,
    allow: Iterable[Allow | str] | None = None,
    stubs: Iterable[Stub] | None = None,
    default: Default | None = None,
) -> S:
    """Guard one ``requests.Session`` in place and return it.

    Works with or without ``install()``. Without rule arguments the session follows the
    rules given to ``install()`` (or the defaults: everything stubbed); with any of them
    it gets rules of its own. Guarding again replaces the rules.
    """
    requests = sys.modules.get("requests")
    if requests is None or not isinstance(session, requests.Session):
        raise TypeError(f"guard() needs a requests.Session, got {session!r}")
    own = guard_rules(allow, stubs, default)

    def rules() -> Rules:
        return _installed.rules if own is None else own

    # The class's own method, even when install() has patched the class.
    original = unwrapped(type(session).get_adapter)
    hook = _get_adapter_hook(original, rules)
    # An instance attribute shadows the class method (and a class patch from install()).
    vars(session)["get_adapter"] = hook.__get__(session)
    return session


class _Installed(InstalledRules):
    def patch(self) -> None:
        _patches.setattr(
            HTTPConnectionPool, "urlopen", _urlopen_hook(vars(HTTPConnectionPool)["urlopen"])
        )
        try:
            import requests
        except ImportError:
            return
        _patches.setattr(
            requests.Session,
            "get_adapter",
            _get_adapter_hook(vars(requests.Session)["get_adapter"], lambda: self.rules),
        )


_installed = _Installed()


def install(**options: Any) -> None:
    """Guard every ``requests`` session and every urllib3 connection pool; idempotent.

    ``allow``, ``stubs``, ``default`` and ``telemetry_exports`` as for
    ``shadowguard.integrations.httpx.install``.
    """
    _patches.install(_installed.apply, options)


def uninstall() -> None:
    """Restore requests and urllib3 as they were before :func:`install`."""
    _patches.uninstall(after=_installed.forget)
