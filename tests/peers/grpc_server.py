"""A real gRPC server on 127.0.0.1 (generic handlers, bytes messages) that counts every hit.

Service ``shop.Orders``: ``Get`` and ``Cancel`` (unary), ``Watch`` (server streaming),
``Upload`` (client streaming), ``Chat`` (both streaming); ``GetAndCancel`` exists too, so
a prefix match of ``Get`` would reach it. It also answers the OTLP trace exporter's
``Export``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.peers.services import service_missing

SERVICE = "shop.Orders"
#: The OTLP trace collector service, which the OpenTelemetry exporters call.
OTLP_TRACES = "opentelemetry.proto.collector.trace.v1.TraceService"


@dataclass
class Hit:
    """One call the server's handler really ran: the method, its metadata, its requests."""

    method: str
    metadata: dict[str, str]
    requests: list[bytes]


@dataclass
class GrpcServer:
    target: str
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def methods(self) -> list[str]:
        with self.lock:
            return [hit.method for hit in self.hits]

    def _hit(self, method: str, context: Any, requests: list[bytes]) -> None:
        metadata = {m.key: m.value for m in context.invocation_metadata()}
        with self.lock:
            self.hits.append(Hit(method, metadata, requests))


def _handlers(state: GrpcServer) -> Any:
    import grpc

    def unary(name: str) -> Any:
        def handle(request: bytes, context: Any) -> bytes:
            state._hit(name, context, [request])
            return b"real:" + request

        return grpc.unary_unary_rpc_method_handler(handle)

    def watch(request: bytes, context: Any) -> Iterator[bytes]:
        state._hit("Watch", context, [request])
        yield b"real-1"
        yield b"real-2"

    def upload(requests: Iterator[bytes], context: Any) -> bytes:
        got = list(requests)
        state._hit("Upload", context, got)
        return b"real:%d" % len(got)

    def chat(requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
        got = list(requests)
        state._hit("Chat", context, got)
        for request in got:
            yield b"real:" + request

    otlp = grpc.method_handlers_generic_handler(OTLP_TRACES, {"Export": unary("Export")})
    return otlp, grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Get": unary("Get"),
            "Cancel": unary("Cancel"),
            "GetAndCancel": unary("GetAndCancel"),
            "Watch": grpc.unary_stream_rpc_method_handler(watch),
            "Upload": grpc.stream_unary_rpc_method_handler(upload),
            "Chat": grpc.stream_stream_rpc_method_handler(chat),
        },
    )


@pytest.fixture(scope="session")
def _grpc_server_session() -> Iterator[GrpcServer]:
    try:
        import grpc
    except ImportError:
        service_missing("grpcio (the gRPC server)")
    from concurrent.futures import ThreadPoolExecutor

    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    port = server.add_insecure_port("127.0.0.1:0")
    state = GrpcServer(f"127.0.0.1:{port}")
    server.add_generic_rpc_handlers(_handlers(state))
    server.start()
    try:
        yield state
    finally:
        server.stop(None)


@pytest.fixture
def grpc_server(_grpc_server_session: GrpcServer) -> GrpcServer:
    """The loopback gRPC server, with its hits cleared for this test."""
    with _grpc_server_session.lock:
        _grpc_server_session.hits.clear()
    return _grpc_server_session
