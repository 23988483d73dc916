"""aiohttp: in shadow, client requests are stubbed unless an allow rule names them.

aiohttp's own hook for a client request is a client middleware: it sees every request a
session sends, each redirect hop and each resend by an outer middleware (digest auth),
before a connection is opened, and may answer it itself. Middlewares belong to a session,
fixed when it is made, and a request's ``middlewares=`` replaces them; so :func:`install`
patches ``ClientSession._request`` to run each shadow request with the guard as the
innermost middleware, after the session's or the request's own. Sessions made before
``install()`` are guarded too; on the primary path the patch awaits the original and
nothing else.

The guard judges each hop by the rules every HTTP client shares. An allowed read goes out
with the marker header; a stubbed request never connects and gets a ``ClientResponse``
with the stub's status, headers and body (``read()``, ``text()``, ``json()``, ``content``
streaming, ``raise_for_status()``); with ``default=BLOCK`` it raises
ShadowSideEffectBlocked. A WebSocket handshake (``ws_connect``) is never stubbed: it is
refused unless one of the ``websockets`` rules names its URL.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable
from http import HTTPStatus
from types import SimpleNamespace
from typing import Any

from shadowguard._outbound import (
    BLOCK,
    DEFAULT_STUB,
    STUB_HEADER,
    Allow,
    Default,
    OutboundRequest,
    Reply,
    Rules,
    Stub,
    mark_stub,
    marker,
    redact_url,
    url_of,
)
from shadowguard.contract import PROCESS, Kind, Patches, mark_wrapped, refuse, scope_now
from shadowguard.errors import missing_extra_error

try:
    import aiohttp
    import aiohttp.client_middlewares  # 3.12 and later: the guard is a client middleware
    from aiohttp.base_protocol import BaseProtocol
    from aiohttp.streams import StreamReader
    from multidict import CIMultiDict, CIMultiDictProxy
except ImportError:  # pragma: no cover - exercised only without the extra
    raise missing_extra_error("aiohttp", "aiohttp") from None

__all__ = ["BLOCK", "STUB_HEADER", "Allow", "Reply", "Stub", "install", "uninstall"]

_CLIENT = "aiohttp"
_patches = Patches("aiohttp")
_rules = Rules()
_websockets = Rules(default=BLOCK)
_WEBSOCKET_REMEDY = (
    "A WebSocket is a two-way channel, not a read: if shadow code may talk to this endpoint, "
    "name it in install(websockets=[...])"
)
# Stands in for the request writer a response reads its sent size from (nothing was sent).
_NOTHING_SENT = SimpleNamespace(output_size=0)

Handler = Callable[[Any], Awaitable[Any]]


def _url(request: Any) -> str:
    """The URL the request goes to, built from where aiohttp connects."""
    url = request.url
    return url_of(url.scheme, url.raw_host or "", url.port, url.raw_path_qs)


async def _content(request: Any) -> bytes | None:
    """The request body, read as sending would read it."""
    body = request.body
    if isinstance(body, (bytes, bytearray)):
        return bytes(body) or None
    try:
        return await body.as_bytes() or None
    except Exception:  # a body that cannot be read whole: the stub gets no content
        return None


async def _guard(request: Any, handler: Handler) -> Any:
    """The innermost client middleware, in shadow: send allowed reads marked, stub the rest."""
    url = _url(request)
    method = request.method
    rules = _rules
    if request.headers.get("Upgrade", "").lower() == "websocket":
        decision = _websockets.decide(method, url)
        if not decision.allowed:
            target = f"{method} {redact_url(url)}"
            raise refuse(
                Kind.HTTP_REQUEST,
                target,
                "send",
                f"WebSocket connect {target} (no websockets rule names it)",
                remedy=_WEBSOCKET_REMEDY,
                detail={"client": _CLIENT, "method": method},
            )
    else:
        decision = rules.decide(method, url, request.headers)
    if decision.allowed:
        header = marker(decision.forward_secret)
        if header is not None:
            request.headers[header[0]] = header[1]
        return await handler(request)
    outbound = OutboundRequest(method, url, dict(request.headers), await _content(request), _CLIENT)
    return _stub_response(request, rules.answer(decision, outbound))


@functools.lru_cache(maxsize=8)
def _accepted(response_class: type) -> frozenset[str]:
    return frozenset(inspect.signature(response_class).parameters)


def _stub_response(request: Any, reply: Reply) -> Any:
    """A ``ClientResponse`` of the request's response class, as ``start()`` fills one in."""
    status, headers, body = reply.render(request.method)
    loop = asyncio.get_running_loop()
    offered = {
        "writer": None,
        "continue100": None,
        "timer": None,
        "request_info": request.request_info,
        "traces": [],
        "loop": loop,
        "session": None,
        "stream_writer": _NOTHING_SENT,
    }
    cls = request.response_class
    accepted = _accepted(cls)
    response = cls(
        request.method,
        request.original_url,
        **{name: value for name, value in offered.items() if name in accepted},
    )
    response.version = aiohttp.HttpVersion11
    response.status = status
    try:
        response.reason = HTTPStatus(status).phrase
    except ValueError:
        response.reason = ""
    response._headers = CIMultiDictProxy(CIMultiDict(headers))
    response._raw_headers = tuple((k.encode(), v.encode("latin-1", "replace")) for k, v in headers)
    cookies = response._headers.getall("Set-Cookie", ())
    if cookies:
        response._raw_cookie_headers = tuple(cookies)
    # Large enough never to pause a protocol that has no transport.
    content = StreamReader(BaseProtocol(loop), max(len(body), 2**16), loop=loop)
    content.feed_data(body)
    content.feed_eof()
    response.content = content
    return mark_stub(response)


def _request_hook(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:

    async def _request(self: Any, method: str, str_or_url: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return await original(self, method, str_or_url, **kwargs)
        own = kwargs.get("middlewares")
        chain = self._middlewares if own is None else own
        kwargs["middlewares"] = (*chain, _guard)
        return await original(self, method, str_or_url, **kwargs)

    return mark_wrapped(_request, original)


def _apply(
    *,
    allow: Iterable[Allow | str] = (),
    stubs: Iterable[Stub] = (),
    default: Default = DEFAULT_STUB,
    telemetry_exports: bool = True,
    websockets: Iterable[Allow | str] = (),
) -> None:
    global _rules, _websockets
    _rules = Rules(allow, stubs, default, telemetry_exports=telemetry_exports)
    _websockets = Rules(websockets, default=BLOCK, telemetry_exports=False)
    session = aiohttp.ClientSession
    _patches.setattr(session, "_request", _request_hook(vars(session)["_request"]))


def install(**options: Any) -> None:
    """Guard every ``aiohttp.ClientSession`` (and ``aiohttp.request()``); idempotent.

    ``allow``, ``stubs``, ``default`` and ``telemetry_exports`` as for
    ``shadowguard.integrations.httpx.install``. ``websockets``: :class:`Allow` rules (or
    host / URL patterns, ``ws://`` and ``wss://``) naming the WebSocket endpoints shadow
    code may connect to with ``ws_connect``; every other WebSocket connect in shadow is
    refused. Sessions made before ``install()`` are covered too (the patch is on the
    class), so there is no per-session ``guard()``.
    """
    _patches.install(_apply, options)


def _forget_rules() -> None:
    global _rules, _websockets
    _rules = Rules()
    _websockets = Rules(default=BLOCK)


def uninstall() -> None:
    """Restore ``aiohttp.ClientSession`` as it was before :func:`install`."""
    _patches.uninstall(after=_forget_rules)
