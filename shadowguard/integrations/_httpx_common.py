"""What the httpx and httpx2 sinks share: the guarded transport, the class seam, ``guard()``.

httpx2 is httpx's successor with the same API, so one body of code serves both; each sink
module (``httpx``, ``httpx2``) installs through its :class:`Library` here, which holds the
library's patch registry and install rules (``guard()`` reads them for either library). The seam is ``Client._transport_for_url`` (and ``AsyncClient``'s): every request of a
client asks it which transport to use - the default one, a custom ``transport=``, a
``mounts`` entry, a proxy, ``MockTransport``, ``ASGITransport`` - including each redirect
hop and ``client.stream()``. In shadow it returns that transport wrapped in
:class:`GuardedTransport`, so a stub travels back through the client's own response
handling (cookies, hooks, streaming, ``response.request``).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from types import ModuleType
from typing import Any, TypeVar

from shadowguard._outbound import (
    Allow,
    Decision,
    Default,
    InstalledRules,
    OutboundRequest,
    Rules,
    Stub,
    add_marker,
    guard_rules,
    mark_stub,
)
from shadowguard.contract import (
    PROCESS,
    Patches,
    is_wrapped,
    mark_wrapped,
    missing_extra_error,
    scope_now,
    unwrapped,
)

__all__ = ["LIBRARIES", "GuardedTransport", "Library", "guard"]

C = TypeVar("C")


class Library(InstalledRules):
    """One library (``httpx`` or ``httpx2``): its patch registry and its install rules;
    installing guards every ``Client`` and ``AsyncClient`` of it."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.patches = Patches(name)

    def module(self) -> ModuleType:
        try:
            return importlib.import_module(self.name)
        except ImportError:
            raise missing_extra_error(self.name, self.name) from None

    def ready(self) -> None:
        self.module()

    def patch(self) -> None:
        module = self.module()
        for cls in (module.Client, module.AsyncClient):
            current = vars(cls).get("_transport_for_url")
            if current is None or is_wrapped(current):
                # httpx2.alias_httpx() makes both names one module: patch it once.
                continue
            hook = _class_hook(current, lambda: self.rules, module, self.name)
            self.patches.setattr(cls, "_transport_for_url", hook)


LIBRARIES = {name: Library(name) for name in ("httpx", "httpx2")}


def _class_hook(
    original: Callable[[Any, Any], Any],
    rules: Callable[[], Rules],
    module: ModuleType,
    library: str,
) -> Callable[[Any, Any], Any]:

    def _transport_for_url(self: Any, url: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, url)
        return GuardedTransport(original(self, url), rules(), module, library)

    mark_wrapped(_transport_for_url, original)
    return _transport_for_url


class GuardedTransport:
    """A transport wrapper used only in shadow: send allowed reads marked, stub the rest."""

    __slots__ = ("_inner", "_library", "_module", "_rules")

    def __init__(self, inner: Any, rules: Rules, module: ModuleType, library: str) -> None:
        self._inner = inner
        self._rules = rules
        self._module = module
        self._library = library

    def handle_request(self, request: Any) -> Any:
        decision = self._rules.decide(request.method, str(request.url), request.headers)
        if decision.allowed:
            add_marker(request.headers, decision.forward_secret)
            return self._inner.handle_request(request)
        # Consume the body as sending would, so generators and files behave alike.
        return self._stub(request, request.read(), decision)

    async def handle_async_request(self, request: Any) -> Any:
        decision = self._rules.decide(request.method, str(request.url), request.headers)
        if decision.allowed:
            add_marker(request.headers, decision.forward_secret)
            return await self._inner.handle_async_request(request)
        return self._stub(request, await request.aread(), decision)

    def _stub(self, request: Any, content: bytes | None, decision: Decision) -> Any:
        outbound = OutboundRequest(
            request.method, str(request.url), dict(request.headers), content, self._library
        )
        status, headers, body = self._rules.answer(decision, outbound).render(request.method)
        stream = _stream_class(self._module)(body)
        response = self._module.Response(status, headers=headers, stream=stream, request=request)
        return mark_stub(response)


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


def guard(
    client: C,
    *,
    allow: Iterable[Allow | str] | None = None,
    stubs: Iterable[Stub] | None = None,
    default: Default | None = None,
) -> C:
    """Guard one ``Client``/``AsyncClient`` (httpx or httpx2) in place and return it.

    Works with or without ``install()``. Without rule arguments the client follows the
    rules given to its library's ``install()`` (or the defaults: everything stubbed);
    with any of them it gets rules of its own. Guarding again replaces the rules.
    """
    library = _library_of(client)
    module = sys.modules[library.name]
    own = guard_rules(allow, stubs, default)

    def rules() -> Rules:
        return library.rules if own is None else own

    # The class's own method, even when install() has patched the class.
    cls: Any = type(client)
    original = unwrapped(cls._transport_for_url)

    def _transport_for_url(url: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(client, url)
        return GuardedTransport(original(client, url), rules(), module, library.name)

    # An instance attribute shadows the class method (and a class patch from install()).
    vars(client)["_transport_for_url"] = mark_wrapped(_transport_for_url, original)
    return client


def _library_of(client: object) -> Library:
    for base in type(client).__mro__:
        top = base.__module__.partition(".")[0]
        if base.__name__ in ("Client", "AsyncClient") and top in LIBRARIES:
            return LIBRARIES[top]
    raise TypeError(f"guard() needs an httpx or httpx2 Client/AsyncClient, got {client!r}")
