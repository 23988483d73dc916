"""http.client: in shadow, requests are stubbed unless an allow rule names them.

``http.client.HTTPConnection`` (and ``HTTPSConnection``) is the seam every standard-library
HTTP client goes through (``urllib.request.urlopen``, ``xmlrpc.client``) and the base of
urllib3's connections, so :func:`install` guards them all, at three methods of the class
that every connection shares, those made before ``install()`` too:

- ``endheaders``: the request line and headers are complete and nothing is sent yet
  (``putrequest`` and ``putheader`` only buffer). In shadow the request is judged here by
  the rules every HTTP client shares: allowed (the marker header added), stubbed, or
  refused (``default=BLOCK``) before a byte is written.
- ``send``: every byte http.client writes, and where it connects. In shadow it writes only
  a request allowed at ``endheaders`` (and a proxy tunnel's CONNECT); a stubbed request's
  bytes are kept, never sent, and the socket is never connected for it; bytes written by
  hand outside a request are refused.
- ``getresponse`` (and urllib3's override of it): a stubbed request is answered here,
  recorded, and its stub parsed by the connection's own response class, so the caller
  gets a real ``http.client.HTTPResponse`` (or urllib3's).

On the primary path each calls the original and nothing else. A request that the
requests/urllib3 guard above already let out goes through unjudged (see
``shadowguard._outbound.passdown``). http.client is in the standard library, so this
integration is always available.
"""

from __future__ import annotations

import http.client
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from shadowguard._outbound import (
    BLOCK,
    STUB_HEADER,
    Allow,
    Decision,
    InstalledRules,
    OutboundRequest,
    Reply,
    Rules,
    Stub,
    judged_above,
    mark_stub,
    marker,
    redact_url,
    url_of,
)
from shadowguard.contract import PROCESS, Kind, Patches, mark_wrapped, refuse, scope_now

__all__ = ["BLOCK", "STUB_HEADER", "Allow", "Reply", "Stub", "install", "uninstall"]

_CLIENT = "http.client"
_patches = Patches("http_client")
# The connection's own request state (name-mangled in http.client): only read and reset.
_STATE = "_HTTPConnection__state"
_IDLE = getattr(http.client, "_CS_IDLE", "Idle")
_STARTED = getattr(http.client, "_CS_REQ_STARTED", "Request-started")
_SENT = getattr(http.client, "_CS_REQ_SENT", "Request-sent")
# The shadow request a connection is between endheaders() and getresponse() with.
_EXCHANGE = "_shadowguard_exchange"
_SEND_REMEDY = (
    "Send requests through request() or putrequest()/putheader()/endheaders(), which "
    "shadowguard judges in shadow traffic; bytes written with send() outside a request "
    "are refused"
)


@dataclass(slots=True, eq=False)
class _Exchange:
    """One shadow request on a connection: how it was judged, and a stub's kept bytes."""

    rules: Rules
    decision: Decision
    method: str
    url: str
    headers: dict[str, str]
    head_kept: bool = field(init=False, default=False)
    body: list[bytes] = field(init=False, default_factory=list)

    def keep(self, data: Any, blocksize: int) -> None:
        """Take what ``send()`` was given, as it would have been written, and write nothing."""
        if not self.head_kept:
            self.head_kept = True
            # endheaders() writes the request line and headers first: not body.
            if isinstance(data, (bytes, bytearray)) and data.startswith(f"{self.method} ".encode()):
                return
        if hasattr(data, "read"):
            while block := data.read(blocksize):
                self.body.append(block.encode("iso-8859-1") if isinstance(block, str) else block)
        elif isinstance(data, (bytes, bytearray, memoryview)):
            self.body.append(bytes(data))
        else:
            self.body.extend(bytes(chunk) for chunk in data)

    def content(self) -> bytes | None:
        body = b"".join(self.body)
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            body = _dechunked(body)
        return body or None


def _dechunked(data: bytes) -> bytes:
    """The body a chunked transfer encoding carries (``data`` itself if it is not one)."""
    parts: list[bytes] = []
    rest = data
    try:
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";", 1)[0], 16)
            if size == 0:
                return b"".join(parts)
            parts.append(rest[:size])
            rest = rest[size + 2 :]
    except ValueError:
        return data
    return b"".join(parts)


def _buffered(conn: Any) -> tuple[str, str, dict[str, str]]:
    """Method, request target and headers of the request the connection has buffered."""
    lines = [bytes(line).decode("latin-1") for line in getattr(conn, "_buffer", ())]
    if not lines:
        return "", "", {}
    method, _, rest = lines[0].partition(" ")
    target = rest.rpartition(" ")[0]  # http.client refuses a target with a space in it
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return method, target, headers


def _url(conn: Any, target: str) -> str:
    """The URL the request goes to: where the connection connects (or tunnels) to."""
    https = isinstance(conn, http.client.HTTPSConnection) or conn.default_port == 443
    tunnel = getattr(conn, "_tunnel_host", None)
    host, port = (tunnel, conn._tunnel_port) if tunnel else (conn.host, conn.port)
    return url_of("https" if https else "http", str(host), port, target)


def _marked(conn: Any, forward_secret: bool) -> None:
    """Add the shadow marker header to the buffered request (replacing one already there)."""
    header = marker(forward_secret)
    if header is None:
        return
    name = header[0].lower().encode("latin-1")
    buffer = conn._buffer
    buffer[1:] = [line for line in buffer[1:] if bytes(line).split(b":", 1)[0].lower() != name]
    conn.putheader(*header)


def _judge(conn: Any) -> None:
    """Judge the buffered request; raise if it is refused (nothing sent, connection idle)."""
    method, target, headers = _buffered(conn)
    url = _url(conn, target)
    rules = _installed.rules
    if judged_above(method, url):
        decision = Decision(True)
    else:
        decision = rules.decide(method, url, headers)
        if decision.allowed:
            _marked(conn, decision.forward_secret)
        elif decision.stub is None:
            # As if the request had never been started: the connection stays usable.
            del conn._buffer[:]
            setattr(conn, _STATE, _IDLE)
            rules.answer(decision, OutboundRequest(method, url, headers, None, _CLIENT))
    vars(conn)[_EXCHANGE] = _Exchange(rules, decision, method, url, headers)


def _endheaders_hook(original: Callable[..., Any]) -> Callable[..., Any]:

    def endheaders(self: Any, message_body: Any = None, *, encode_chunked: bool = False) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, message_body, encode_chunked=encode_chunked)
        vars(self).pop(_EXCHANGE, None)
        if getattr(self, _STATE, None) == _STARTED:
            _judge(self)
        return original(self, message_body, encode_chunked=encode_chunked)

    return mark_wrapped(endheaders, original)


def _tunnel_connect(conn: Any, data: Any) -> bool:
    """Is ``data`` the CONNECT that opens this connection's proxy tunnel, and nothing more?"""
    tunnel = getattr(conn, "_tunnel_host", None)
    if not tunnel or conn.sock is None or not isinstance(data, (bytes, bytearray)):
        return False
    head = bytes(data)
    line, _, _ = head.partition(b"\r\n")
    words = line.split(b" ")
    host = f"[{tunnel}]" if ":" in tunnel else tunnel.encode("idna").decode("ascii")
    wanted = f"{host}:{conn._tunnel_port}".lower().encode("ascii")
    return (
        len(words) == 3
        and words[0] == b"CONNECT"
        and words[1].lower() == wanted
        and head.endswith(b"\r\n\r\n")
        and head.count(b"\r\n\r\n") == 1
    )


def _send_hook(original: Callable[..., Any]) -> Callable[..., Any]:

    def send(self: Any, data: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, data)
        exchange = vars(self).get(_EXCHANGE)
        if exchange is not None and getattr(self, _STATE, None) == _SENT:
            if exchange.decision.allowed:
                return original(self, data)
            exchange.keep(data, self.blocksize)
            return None
        if _tunnel_connect(self, data):
            return original(self, data)
        target = redact_url(_url(self, "/"))
        raise refuse(
            Kind.HTTP_REQUEST,
            target,
            "send",
            f"bytes written to {target} outside an HTTP request in shadow traffic",
            remedy=_SEND_REMEDY,
            detail={"client": _CLIENT, "method": ""},
        )

    return mark_wrapped(send, original)


class _StubSocket:
    """Stands in for the socket while the connection reads a stub response from its bytes."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BytesIO:
        return io.BytesIO(self._data)

    def settimeout(self, timeout: float | None) -> None:
        pass

    def shutdown(self, how: int) -> None:
        pass

    def close(self) -> None:
        pass


def _response_bytes(status: int, headers: Iterable[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status} {http.client.responses.get(status, '')}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + body


def _answer(conn: Any, exchange: _Exchange, original: Callable[[Any], Any]) -> Any:
    """Record the stub, then let ``original`` read it as the server's response."""
    request = OutboundRequest(
        exchange.method, exchange.url, exchange.headers, exchange.content(), _CLIENT
    )
    reply = exchange.rules.answer(exchange.decision, request)
    real = conn.sock
    conn.sock = _StubSocket(_response_bytes(*reply.render(exchange.method)))
    try:
        return mark_stub(original(conn))
    finally:
        if isinstance(conn.sock, _StubSocket):
            conn.sock = real
        elif real is not None:
            real.close()  # the stub said "Connection: close", and the connection closed


def _getresponse_hook(original: Callable[[Any], Any]) -> Callable[[Any], Any]:

    def getresponse(self: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self)
        if isinstance(self.sock, _StubSocket):  # urllib3's getresponse calling http.client's
            return mark_stub(original(self))
        exchange = vars(self).pop(_EXCHANGE, None)
        if exchange is None or exchange.decision.allowed or getattr(self, _STATE, None) != _SENT:
            return original(self)
        return _answer(self, exchange, original)

    return mark_wrapped(getresponse, original)


class _Installed(InstalledRules):
    def patch(self) -> None:
        cls = http.client.HTTPConnection
        methods = vars(cls)
        _patches.setattr(cls, "endheaders", _endheaders_hook(methods["endheaders"]))
        _patches.setattr(cls, "send", _send_hook(methods["send"]))
        _patches.setattr(cls, "getresponse", _getresponse_hook(methods["getresponse"]))
        try:
            from urllib3.connection import HTTPConnection
        except ImportError:
            return
        # It reads the socket before it asks http.client for the response.
        original = vars(HTTPConnection)["getresponse"]
        _patches.setattr(HTTPConnection, "getresponse", _getresponse_hook(original))


_installed = _Installed()


def install(**options: Any) -> None:
    """Guard every ``http.client`` connection (urllib, urllib3's connections); idempotent.

    ``allow``, ``stubs``, ``default`` and ``telemetry_exports`` as for
    ``shadowguard.integrations.httpx.install``. Connections made before ``install()`` are
    covered too (the patch is on the class), so there is no per-object ``guard()``.
    """
    _patches.install(_installed.apply, options)


def uninstall() -> None:
    """Restore ``http.client`` (and urllib3's connection) as they were before :func:`install`."""
    _patches.uninstall(after=_installed.forget)
