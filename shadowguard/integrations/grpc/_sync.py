"""The sync seam: grpc's multicallable classes, and the call objects a stub answers with.

Every sync call goes through one of ``grpc._channel``'s multicallables
(``channel.unary_unary(...)`` and friends return one; generated stubs keep them;
``grpc.intercept_channel`` makes a new one per call, for the method its interceptors
chose), so patching their ``__call__``, ``with_call`` and ``future`` covers channels and
stubs made before ``install()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
from grpc import _channel

from shadowguard._outbound import STUB_METADATA, GrpcReply, mark_stub, marked_metadata
from shadowguard.contract import PROCESS, Patches, mark_wrapped, scope_now
from shadowguard.integrations.grpc._common import Finished, answer, judge

__all__ = ["StubCall", "StubStream", "patch"]

# (class, shape, methods) for every multicallable of grpc._channel; a method returning a
# stream of responses is named with "stream" as its way.
_SEAMS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "_UnaryUnaryMultiCallable",
        "unary_unary",
        (("__call__", "unary"), ("with_call", "with_call"), ("future", "future")),
    ),
    ("_UnaryStreamMultiCallable", "unary_stream", (("__call__", "stream"),)),
    ("_SingleThreadedUnaryStreamMultiCallable", "unary_stream", (("__call__", "stream"),)),
    (
        "_StreamUnaryMultiCallable",
        "stream_unary",
        (("__call__", "unary"), ("with_call", "with_call"), ("future", "future")),
    ),
    ("_StreamStreamMultiCallable", "stream_stream", (("__call__", "stream"),)),
)


# Experimental (a channel option); a release without it loses nothing.
_OPTIONAL = "_SingleThreadedUnaryStreamMultiCallable"


class StubCall(Finished, grpc.RpcError, grpc.Call, grpc.Future):  # type: ignore[misc]
    """A finished call answered by a stub: a ``grpc.Call`` and a done ``grpc.Future``.

    Like grpc's own call objects it is also the ``RpcError`` raised when the stub's status
    is not OK. Its trailing metadata carries the stub header; ``shadowguard.is_stub(call)``
    is true.
    """

    def __init__(self, reply: GrpcReply) -> None:
        super().__init__(f"shadowguard stub: {reply.code} {reply.details}".rstrip())
        self._reply = reply
        self._code = getattr(grpc.StatusCode, reply.code)
        mark_stub(self)

    def initial_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return tuple(STUB_METADATA.items())

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._reply.details

    def debug_error_string(self) -> str:
        return f"shadowguard stub answered with {self._reply.code}"

    def is_active(self) -> bool:
        return False

    def running(self) -> bool:
        return False

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False  # already terminated: grpc then never calls it

    def result(self, timeout: float | None = None) -> Any:
        if self._code is not grpc.StatusCode.OK:
            raise self
        return self._reply.response

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return None if self._code is grpc.StatusCode.OK else self

    def traceback(self, timeout: float | None = None) -> Any:
        return None

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        fn(self)


class StubStream(StubCall):
    """A stub's stream of responses; raises itself at the end if its status is not OK."""

    def __init__(self, reply: GrpcReply) -> None:
        super().__init__(reply)
        messages = reply.responses
        if messages is None:
            messages = () if reply.response is None else (reply.response,)
        self._messages: Iterator[Any] = iter(messages)

    def __iter__(self) -> StubStream:
        return self

    def __next__(self) -> Any:
        for message in self._messages:
            return message
        if self._code is not grpc.StatusCode.OK:
            raise self
        raise StopIteration

    def next(self) -> Any:
        return self.__next__()


def _with_marker(args: tuple[Any, ...], kwargs: dict[str, Any], forward: bool) -> tuple[Any, ...]:
    # Every multicallable takes (request or request_iterator, timeout, metadata, ...).
    if len(args) >= 3:
        return (*args[:2], marked_metadata(args[2], forward), *args[3:])
    kwargs["metadata"] = marked_metadata(kwargs.get("metadata"), forward)
    return args


def _stubbed(reply: GrpcReply, way: str) -> Any:
    if way == "stream":
        return StubStream(reply)
    call = StubCall(reply)
    if way == "future":
        return call
    response = call.result()  # raises the stub's error status
    return (response, call) if way == "with_call" else response


def _hook(original: Callable[..., Any], shape: str, way: str) -> Callable[..., Any]:

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, *args, **kwargs)
        judged = judge(self._target, self._method)
        decision = judged[2]
        if decision.allowed:
            args = _with_marker(args, kwargs, decision.forward_secret)
            return original(self, *args, **kwargs)
        request = args[0] if args else kwargs.get("request", kwargs.get("request_iterator"))
        return _stubbed(answer(judged, shape, request), way)

    return mark_wrapped(call, original)


def patch(patches: Patches) -> None:
    """Put the hooks on every multicallable class of ``grpc._channel``."""
    for name, shape, methods in _SEAMS:
        cls = getattr(_channel, name, None)
        if cls is None and name == _OPTIONAL:
            continue
        if cls is None:
            # A grpc release whose calls would go around the guard: refuse to install.
            raise ImportError(f"shadowguard cannot guard this grpcio: grpc._channel.{name} is gone")
        for method, way in methods:
            patches.setattr(cls, method, _hook(vars(cls)[method], shape, way))
