"""The asyncio seam: ``grpc.aio``'s multicallable classes, and the calls a stub answers with.

Every ``grpc.aio`` call starts at one of the four multicallables' ``__call__`` (with or
without client interceptors), so patching them covers channels and stubs made before
``install()``. A refused call raises when it is made, before the call object exists.

Client interceptors run after that, in a task of their own, and may send another method
than the one called: each call object's ``__init__`` (what an interceptor's continuation
makes) judges a method the multicallable did not, so a rewritten name is refused unless a
rule lets it out.

A call with streamed requests outlives the request that opened it: ``call.write()`` in
shadow is refused unless a shadow request opened that call (and a rule let it out), so a
shadow request cannot write into a stream that primary code opened and keeps.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any

import grpc
from grpc._cython import cygrpc
from grpc.aio import _call, _channel, _interceptor

from shadowguard._outbound import STUB_METADATA, GrpcReply, mark_stub, marked_metadata
from shadowguard.contract import PROCESS, Kind, Patches, mark_wrapped, refuse, scope_now
from shadowguard.integrations.grpc._common import Finished, answer, judge, text

__all__ = ["AioStubCall", "patch"]

# Set on a call object that a shadow request opened with a rule's leave.
_OPENED_IN_SHADOW = "_shadowguard_opened_in_shadow"
# The method the multicallable judged, for the call objects made under it (interceptor
# tasks copy the context they are created in).
_judged: contextvars.ContextVar[bytes | str | None] = contextvars.ContextVar(
    "shadowguard_grpc_aio_judged", default=None
)
# The call classes an interceptor's continuation makes.
_CALLS = ("UnaryUnaryCall", "UnaryStreamCall", "StreamUnaryCall", "StreamStreamCall")
# Where the channel's __init__ hook keeps the target, for grpcio before 1.82.
_TARGET = "_shadowguard_target"
# The write() of a call with streamed requests, plain and intercepted.
_WRITES = ((_call, "_StreamRequestMixin"), (_interceptor, "_InterceptedStreamRequestMixin"))
_SEAMS = (
    ("UnaryUnaryMultiCallable", "unary_unary"),
    ("UnaryStreamMultiCallable", "unary_stream"),
    ("StreamUnaryMultiCallable", "stream_unary"),
    ("StreamStreamMultiCallable", "stream_stream"),
)


class AioStubCall(Finished):
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

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        callback(self)


def _target(multicallable: Any) -> str:
    # cygrpc.AioChannel keeps the target it dials (grpcio 1.82 and later); before that the
    # channel's __init__ hook keeps it. Without one (a channel made before install() on an
    # older grpcio), a rule naming a target matches nothing.
    target = getattr(multicallable._channel, "target", None)
    if target is None:
        # The multicallable's first reference is the Channel that made it.
        references = getattr(multicallable, "_references", None) or (None,)
        channel = references[0]
        target = vars(channel).get(_TARGET, b"") if hasattr(channel, "__dict__") else b""
    return text(target) if isinstance(target, (bytes, str)) else ""


def _init_hook(original: Callable[..., None]) -> Callable[..., None]:

    def __init__(self: Any, target: str, *args: Any, **kwargs: Any) -> None:
        original(self, target, *args, **kwargs)
        # Bookkeeping for every channel (shadow or not): calls made later need its target.
        vars(self)[_TARGET] = target

    return mark_wrapped(__init__, original)


def _hook(original: Callable[..., Any], shape: str) -> Callable[..., Any]:

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, *args, **kwargs)
        judged = judge(_target(self), self._method)
        decision = judged[2]
        if decision.allowed:
            kwargs["metadata"] = marked_metadata(kwargs.get("metadata"), decision.forward_secret)
            token = _judged.set(self._method)
            try:
                opened = original(self, *args, **kwargs)
            finally:
                _judged.reset(token)
            with contextlib.suppress(TypeError):  # no __dict__: its writes are refused
                vars(opened)[_OPENED_IN_SHADOW] = True
            return opened
        request = args[0] if args else kwargs.get("request", kwargs.get("request_iterator"))
        return AioStubCall(answer(judged, shape, request))

    return mark_wrapped(call, original)


def _call_init_hook(original: Callable[..., None], shape: str) -> Callable[..., None]:
    signature = inspect.signature(original)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, *args, **kwargs)
        call = signature.bind(self, *args, **kwargs)
        method = call.arguments["method"]
        if method != _judged.get():
            # An interceptor sends another method than the one the application called.
            target = getattr(call.arguments["channel"], "target", None) or b""
            judged = judge(target, method)
            if not judged[2].allowed:
                raise refuse(
                    Kind.GRPC_CALL,
                    f"{judged[0]}{judged[1]}",
                    "call",
                    f"gRPC call {judged[1]} in shadow traffic, the method a client "
                    "interceptor sent (no allow rule names it)",
                    remedy="Add a GrpcAllow rule for it if the method changes nothing; a "
                    "stub cannot answer a method an interceptor rewrote",
                    detail={"method": judged[1], "call": shape},
                )
            metadata = marked_metadata(call.arguments["metadata"], judged[2].forward_secret)
            call.arguments["metadata"] = grpc.aio.Metadata(*metadata)
        return original(*call.args, **call.kwargs)

    return mark_wrapped(__init__, original)


def _write_hook(original: Callable[..., Any]) -> Callable[..., Any]:

    async def write(self: Any, request: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return await original(self, request)
        if not vars(self).get(_OPENED_IN_SHADOW, False):
            raise refuse(
                Kind.GRPC_CALL,
                "grpc stream opened outside shadow traffic",
                "write",
                "a write in shadow traffic to a gRPC stream that primary code opened",
                remedy="Open the stream inside the shadow request (a GrpcAllow or GrpcStub "
                "rule then decides), or keep shadow work out of streams primary code keeps",
                detail={"method": "", "call": "stream write"},
            )
        return await original(self, request)

    return mark_wrapped(write, original)


def patch(patches: Patches) -> None:
    """Put the hooks on the four multicallable classes of ``grpc.aio`` and on ``write()``."""
    for name, shape in _SEAMS:
        cls = getattr(_channel, name)
        patches.setattr(cls, "__call__", _hook(vars(cls)["__call__"], shape))
    if not hasattr(cygrpc.AioChannel, "target"):
        init = vars(_channel.Channel)["__init__"]
        patches.setattr(_channel.Channel, "__init__", _init_hook(init))
    for name, (_, shape) in zip(_CALLS, _SEAMS, strict=True):
        cls = getattr(_call, name)
        patches.setattr(cls, "__init__", _call_init_hook(vars(cls)["__init__"], shape))
    for module, name in _WRITES:
        mixin = getattr(module, name, None)
        if mixin is not None and "write" in vars(mixin):
            patches.setattr(mixin, "write", _write_hook(vars(mixin)["write"]))
