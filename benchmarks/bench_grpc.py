"""gRPC: the guard's cost on primary unary calls (sync and grpc.aio), and a shadow stub.

A loopback gRPC server in a child process answers ``/bench.Echo/Get`` with bytes. The
guard patches grpc's multicallable classes, so the sync unguarded side calls the original
method, saved before ``install()``, on the same multicallable; the ``grpc.aio`` side is
uninstalled and installed between samples. Guarded and unguarded calls run interleaved on
one channel in the same run.
"""

from __future__ import annotations

import asyncio
import textwrap
from typing import Any

from benchmarks._harness import Harness
from benchmarks._loopback import child_server
from shadowguard import shadow

_METHOD = "/bench.Echo/Get"
_SERVER = textwrap.dedent(
    """
    from concurrent.futures import ThreadPoolExecutor
    import grpc

    def get(request, context):
        return request

    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Get": grpc.unary_unary_rpc_method_handler(get)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()
    """
)


def _bench_sync(h: Harness, target: str) -> None:
    import grpc
    from grpc import _channel

    from shadowguard.integrations import grpc as sink

    original = vars(_channel._UnaryUnaryMultiCallable)["__call__"]
    sink.install(stubs=[sink.GrpcStub(_METHOD, response=b"stub")])
    try:
        with grpc.insecure_channel(target) as channel:
            get = channel.unary_unary(_METHOD)
            get(b"x")  # the connection open before timing
            h.compare(
                "grpc unary call loopback, primary: guarded vs unguarded",
                lambda: original(get, b"x"),
                lambda: get(b"x"),
                target_ratio=1.03,
            )

            def stubbed() -> Any:
                with shadow():
                    return get(b"x")

            h.compare(
                "grpc: shadow stubbed call vs real primary call",
                lambda: original(get, b"x"),
                stubbed,
                target_ratio=0.9,
            )
    finally:
        sink.uninstall()


def _bench_seam(h: Harness) -> None:
    """The wrapper alone on the primary path, around a method that does nothing."""
    from shadowguard.integrations.grpc import _sync

    def original(self: object, request: object, *args: object, **kwargs: object) -> object:
        return request

    hook = _sync._hook(original, "unary_unary", "unary")
    h.compare(
        "grpc multicallable hook (the patched seam), primary",
        lambda: original(None, b"x"),
        lambda: hook(None, b"x"),
        target_added_ns=300,
        fastest=True,
    )


def _bench_aio(h: Harness, target: str) -> None:
    """Uninstalled against installed, sample by sample: the guard has two seams on this
    path (the multicallable and the call object it makes)."""
    import grpc.aio

    from shadowguard.integrations import grpc as sink

    loop = asyncio.new_event_loop()
    try:

        async def open_channel() -> Any:
            return grpc.aio.insecure_channel(target)

        channel = loop.run_until_complete(open_channel())
        get = channel.unary_unary(_METHOD)

        async def call() -> Any:
            return await get(b"x")

        loop.run_until_complete(call())
        h.compare(
            "grpc.aio unary call loopback, primary: guarded vs unguarded",
            lambda: loop.run_until_complete(call()),
            lambda: loop.run_until_complete(call()),
            target_ratio=1.03,
            before_baseline=sink.uninstall,
            before_guarded=sink.install,
        )
        loop.run_until_complete(channel.close())
    finally:
        sink.uninstall()
        loop.close()


def run(h: Harness) -> None:
    _bench_seam(h)
    with child_server(_SERVER) as port, h.longer_samples():
        target = f"127.0.0.1:{port}"
        _bench_sync(h, target)
        _bench_aio(h, target)
