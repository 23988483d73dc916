"""The asyncio seam: ``grpc.aio``'s multicallable classes, and the calls a stub answers with.

Every ``grpc.aio`` call starts at one of the four multicallables' ``__call__`` (with or
without client interceptors), so patching them covers channels and stubs made before
``install()``. A refused call raises when it is made, before the call object exists.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Generator
from typing import Any

import grpc
from grpc.aio import _channel

from shadowguard._outbound import STUB_METADATA, GrpcReply, mark_stub, marked_metadata
from shadowguard.contract import PROCESS, Patches, mark_wrapped, scope_now
from shadowguard.integrations.grpc._common import answer, judge, text

__all__ = ["AioStubCall", "patch"]

_SEAMS = (
    ("UnaryUnaryMultiCallable", "unary_unary"),
    ("UnaryStreamMultiCallable", "unary_stream"),
    ("StreamUnaryMultiCallable", "stream_unary"),
    ("StreamStreamMultiCallable", "stream_stream"),
)


class AioStubCall:
    """A ``grpc.aio`` call answered by a stub: awaitable (unary responses), async-iterable
    and readable (streamed responses), writable (streamed requests, which it drops).

    A status other than OK raises ``grpc.aio.AioRpcError`` where grpc would. Its trailing
    metadata carries the stub header; ``shadowguard.is_stub(call)`` is true.
    """

    def __init__(self, reply: GrpcReply) -> None:
        self._reply = reply
        self._code = getattr(grpc.StatusCode, reply.code)
        messages = reply.responses
        if messages is None:
            messages = () if reply.response is None else (reply.response,)
        self._messages = iter(messages)
        mark_stub(self)

    def _error(self) -> grpc.aio.AioRpcError:
        return grpc.aio.AioRpcError(
            self._code,
            grpc.aio.Metadata(),
            grpc.aio.Metadata(*STUB_METADATA.items()),
            self._reply.details,
        )

    def __await__(self) -> Generator[Any, None, Any]:
        return self._result().__await__()

    async def _result(self) -> Any:
        if self._code is not grpc.StatusCode.OK:
            raise self._error()
        return self._reply.response

    async def read(self) -> Any:
        for message in self._messages:
            return message
        if self._code is not grpc.StatusCode.OK:
            raise self._error()
        return grpc.aio.EOF

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while (message := await self.read()) is not grpc.aio.EOF:
            yield message

    async def write(self, request: Any) -> None:
        return None

    async def done_writing(self) -> None:
        return None

    async def initial_metadata(self) -> grpc.aio.Metadata:
        return grpc.aio.Metadata()

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        return grpc.aio.Metadata(*STUB_METADATA.items())

    async def code(self) -> grpc.StatusCode:
        return self._code

    async def details(self) -> str:
        return self._reply.details

    async def debug_error_string(self) -> str:
        return f"shadowguard stub answered with {self._reply.code}"

    async def wait_for_connection(self) -> None:
        return None

    def cancel(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def done(self) -> bool:
        return True

    def time_remaining(self) -> float | None:
        return None

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        callback(self)


def _target(multicallable: Any) -> str:
    # cygrpc.AioChannel keeps the target it dials as bytes; without one, a rule naming a
    # target matches nothing.
    target = getattr(multicallable._channel, "target", b"")
    return text(target) if isinstance(target, (bytes, str)) else ""


def _hook(original: Callable[..., Any], shape: str) -> Callable[..., Any]:

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, *args, **kwargs)
        judged = judge(_target(self), self._method)
        decision = judged[2]
        if decision.allowed:
            kwargs["metadata"] = marked_metadata(kwargs.get("metadata"), decision.forward_secret)
            return original(self, *args, **kwargs)
        request = args[0] if args else kwargs.get("request", kwargs.get("request_iterator"))
        return AioStubCall(answer(judged, shape, request))

    return mark_wrapped(call, original)


def patch(patches: Patches) -> None:
    """Put the hooks on the four multicallable classes of ``grpc.aio``."""
    for name, shape in _SEAMS:
        cls = getattr(_channel, name)
        patches.setattr(cls, "__call__", _hook(vars(cls)["__call__"], shape))
