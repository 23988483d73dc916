"""httpx (and httpx2): in shadow, requests are stubbed unless an allow rule names them.

The seam is ``Client._transport_for_url`` (and ``AsyncClient``'s): every request of a
client asks it which transport to use - the default one, a custom ``transport=``, a
``mounts`` entry, a proxy, ``MockTransport``, ``ASGITransport`` - including each redirect
hop and ``client.stream()``. In shadow it returns that transport wrapped in a guard, so
a stub travels back through the client's own response handling (cookies, hooks,
streaming, ``response.request``). On the primary path it calls the original and nothing
else. ``httpx2`` (same API) is served by this code; see ``shadowguard.integrations.httpx2``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from types import ModuleType
from typing import Any, TypeVar

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
    marker,
)
from shadowguard._patching import Patches
from shadowguard.contract import PROCESS, scope_now
from shadowguard.errors import missing_extra_error

__all__ = ["BLOCK", "STUB_HEADER", "Allow", "Reply", "Stub", "guard", "install", "uninstall"]

C = TypeVar("C")
_ORIGINAL = "__shadowguard_original__"
_LIBRARIES = ("httpx", "httpx2")


def _mark(headers: Any, forward_secret: bool) -> None:
    header = marker(forward_secret)
    if header is not None:
        headers[header[0]] = header[1]


def _outbound(request: Any, content: bytes | None, client: str) -> OutboundRequest:
    return OutboundRequest(request.method, str(request.url), dict(request.headers), content, client)


_STREAM_CLASSES: dict[str, type] = {}


def _stream_class(module: ModuleType) -> type:
    """A body stream of ``module``'s own types, unread until the caller reads it."""
    cls = _STREAM_CLASSES.get(module.__name__)
    if cls is None:

        def __init__(self: Any, body: bytes) -> None:
            self._body = body

        def __iter__(self: Any) -> Iterator[bytes]:
            yield self._body

        async def __aiter__(self: Any) -> AsyncIterator[bytes]:
            yield self._body

        bases = (module.SyncByteStream, module.AsyncByteStream)
        namespace = {"__init__": __init__, "__iter__": __iter__, "__aiter__": __aiter__}
        cls = _STREAM_CLASSES[module.__name__] = type("ShadowStubStream", bases, namespace)
    return cls


class _Guarded:
    """A transport wrapper used only in shadow: send allowed reads marked, stub the rest."""

    __slots__ = ("_inner", "_library", "_module", "_rules")

    def __init__(self, inner: Any, rules: Rules, module: ModuleType, library: str) -> None:
        self._inner = inner
        self._rules = rules
        self._module = module
        self._library = library

    def _stub(self, request: Any, content: bytes | None, decision: Any) -> Any:
        reply = self._rules.answer(decision, _outbound(request, content, self._library))
        status, headers, body = reply.render(request.method)
        stream = _stream_class(self._module)(body)
        return self._module.Response(status, headers=headers, stream=stream, request=request)

    def handle_request(self, request: Any) -> Any:
        decision = self._rules.decide(request.method, str(request.url), request.headers)
        if decision.allowed:
            _mark(request.headers, decision.forward_secret)
            return self._inner.handle_request(request)
        # Consume the body as sending would, so generators and files behave alike.
        return self._stub(request, request.read(), decision)

    async def handle_async_request(self, request: Any) -> Any:
        decision = self._rules.decide(request.method, str(request.url), request.headers)
        if decision.allowed:
            _mark(request.headers, decision.forward_secret)
            return await self._inner.handle_async_request(request)
        return self._stub(request, await request.aread(), decision)


class _Flavor:
    """The state of one library (``httpx`` or ``httpx2``): its patches and its rules."""

    def __init__(self, library: str) -> None:
        self.library = library
        self.patches = Patches(library)
        self.rules = Rules()

    def module(self) -> ModuleType:
        try:
            return importlib.import_module(self.library)
        except ImportError:
            raise missing_extra_error(self.library, self.library) from None

    def install(
        self,
        *,
        allow: Iterable[Allow | str] = (),
        stubs: Iterable[Stub] = (),
        default: Default = DEFAULT_STUB,
        telemetry_exports: bool = True,
    ) -> None:
        if self.patches:
            return
        module = self.module()
        self.rules = Rules(allow, stubs, default, telemetry_exports=telemetry_exports)
        for cls in (module.Client, module.AsyncClient):
            current = vars(cls).get("_transport_for_url")
            if current is None or hasattr(current, _ORIGINAL):
                # httpx2.alias_httpx() makes both names one module: patch it once.
                continue
            hook = _class_hook(current, lambda: self.rules, module, self.library)
            self.patches.setattr(cls, "_transport_for_url", hook)

    def uninstall(self) -> None:
        self.patches.restore()
        self.rules = Rules()


def _class_hook(
    original: Callable[[Any, Any], Any],
    rules: Callable[[], Rules],
    module: ModuleType,
    library: str,
) -> Callable[[Any, Any], Any]:

    def _transport_for_url(self: Any, url: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, url)
        return _Guarded(original(self, url), rules(), module, library)

    setattr(_transport_for_url, _ORIGINAL, original)
    return _transport_for_url


_FLAVORS = {name: _Flavor(name) for name in _LIBRARIES}


def _library_of(client: object) -> tuple[str, ModuleType]:
    for base in type(client).__mro__:
        top = base.__module__.partition(".")[0]
        if base.__name__ in ("Client", "AsyncClient") and top in _LIBRARIES:
            return top, sys.modules[top]
    raise TypeError(f"guard() needs an httpx or httpx2 Client/AsyncClient, got {client!r}")


def guard(
    client: C,
    *,
    allow: Iterable[Allow | str] | None = None,
    stubs: Iterable[Stub] | None = None,
    default: Default | None = None,
) -> C:
    """Guard one ``Client``/``AsyncClient`` (httpx or httpx2), with or without ``install()``.

    Without rule arguments the client follows the rules given to ``install()`` (or the
    defaults: everything stubbed); with any of them it gets rules of its own. Returns
    the client. Guarding again replaces the rules.
    """
    library, module = _library_of(client)
    flavor = _FLAVORS[library]
    if allow is None and stubs is None and default is None:

        def rules() -> Rules:
            return flavor.rules

    else:
        own = Rules(allow or (), stubs or (), DEFAULT_STUB if default is None else default)

        def rules() -> Rules:
            return own

    cls: Any = type(client)

    def _transport_for_url(url: Any) -> Any:
        original = cls._transport_for_url
        original = getattr(original, _ORIGINAL, original)
        if scope_now() is None and not PROCESS.shadow:
            return original(client, url)
        return _Guarded(original(client, url), rules(), module, library)

    # An instance attribute shadows the class method (and a class patch from install()).
    vars(client)["_transport_for_url"] = _transport_for_url
    return client


_httpx = _FLAVORS["httpx"]


def install(
    *,
    allow: Iterable[Allow | str] = (),
    stubs: Iterable[Stub] = (),
    default: Default = DEFAULT_STUB,
    telemetry_exports: bool = True,
) -> None:
    """Guard every ``httpx.Client`` and ``httpx.AsyncClient``; idempotent.

    ``allow``: :class:`Allow` rules (or host / URL patterns) for shadow reads that may
    really go out, marked with the shadow marker header. ``stubs``: :class:`Stub` rules
    answering the rest. ``default``: the stub for requests no rule names (200, ``{}``) or
    ``BLOCK`` to raise ``ShadowSideEffectBlocked``. ``telemetry_exports``: let the
    OpenTelemetry SDK's own export requests to the configured OTLP endpoints through
    (default True).
    """
    _httpx.install(allow=allow, stubs=stubs, default=default, telemetry_exports=telemetry_exports)


def uninstall() -> None:
    """Restore ``httpx`` as it was before :func:`install`."""
    _httpx.uninstall()
