"""grpc.aio against a real loopback gRPC server: refused or stubbed in shadow, as primary
untouched, allowed reads reach the server with the marker metadata."""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest

import shadowguard
from shadowguard import ShadowSideEffectBlocked, is_stub
from shadowguard.integrations import grpc as sink
from tests.integrations._support import installing
from tests.peers.grpc_server import SERVICE, GrpcServer

MARKER = "x-shadow-request"
GET, CANCEL = f"/{SERVICE}/Get", f"/{SERVICE}/Cancel"
WATCH, UPLOAD, CHAT = f"/{SERVICE}/Watch", f"/{SERVICE}/Upload", f"/{SERVICE}/Chat"


async def _requests(*items: bytes) -> AsyncIterator[bytes]:
    for item in items:
        yield item


@pytest.mark.asyncio
async def test_every_call_shape_is_refused_in_shadow_and_runs_as_primary(
    grpc_server: GrpcServer,
) -> None:
    async with grpc.aio.insecure_channel(grpc_server.target) as channel:
        cancel, watch = channel.unary_unary(CANCEL), channel.unary_stream(WATCH)
        upload, chat = channel.stream_unary(UPLOAD), channel.stream_stream(CHAT)
        with installing(sink):
            with shadowguard.shadow() as scope:
                for attempt in (
                    lambda: cancel(b"o"),
                    lambda: watch(b"o"),
                    lambda: upload(_requests(b"a")),
                    lambda: upload(),
                    lambda: chat(_requests(b"a")),
                    lambda: channel.unary_unary(GET)(request=b"o"),
                ):
                    with pytest.raises(ShadowSideEffectBlocked):
                        await attempt()
            assert scope.counts["grpc.call"] == 6
            # The target of a channel made before install() is known from grpcio 1.82 on.
            assert scope.suppressed[0].target in {f"{grpc_server.target}{CANCEL}", CANCEL}
            assert [s.detail["call"] for s in scope.suppressed[:5]] == [
                "unary_unary",
                "unary_stream",
                "stream_unary",
                "stream_unary",
                "stream_stream",
            ]
            assert grpc_server.hits == []
            assert await cancel(b"o") == b"real:o"
            assert [m async for m in watch(b"w")] == [b"real-1", b"real-2"]
            assert await upload(_requests(b"a", b"b")) == b"real:2"
            assert await upload(request_iterator=_requests(b"k")) == b"real:1"
            assert [m async for m in chat(_requests(b"x"))] == [b"real:x"]
    assert grpc_server.methods() == ["Cancel", "Watch", "Upload", "Upload", "Chat"]
    assert all(MARKER not in hit.metadata for hit in grpc_server.hits)


@pytest.mark.asyncio
async def test_a_channel_made_after_install_is_recorded_and_matched_by_its_target(
    grpc_server: GrpcServer,
) -> None:
    allow = [sink.GrpcAllow(GET, target=grpc_server.target)]
    with installing(sink, allow=allow):
        async with grpc.aio.insecure_channel(grpc_server.target) as channel:
            with shadowguard.shadow() as scope:
                assert await channel.unary_unary(GET)(b"1") == b"real:1"
                with pytest.raises(ShadowSideEffectBlocked):
                    await channel.unary_unary(CANCEL)(b"2")
    assert scope.suppressed[0].target == f"{grpc_server.target}{CANCEL}"
    assert grpc_server.methods() == ["Get"]


@pytest.mark.asyncio
async def test_allowed_methods_reach_the_server_marked_and_stubs_answer(
    grpc_server: GrpcServer,
) -> None:
    stubs = [
        sink.GrpcStub(CANCEL, response=b"stub"),
        sink.GrpcStub(CHAT, responses=[b"s1", b"s2"]),
        sink.GrpcStub(UPLOAD, code="PERMISSION_DENIED", details="read only"),
    ]
    async with grpc.aio.insecure_channel(grpc_server.target) as channel:
        with installing(sink, allow=[GET, WATCH], stubs=stubs), shadowguard.shadow() as scope:
            get = channel.unary_unary(GET)
            assert await get(b"1", metadata=grpc.aio.Metadata(("tenant", "t1"))) == b"real:1"
            assert [m async for m in channel.unary_stream(WATCH)(b"w")] == [b"real-1", b"real-2"]
            call = channel.unary_unary(CANCEL)(b"o")
            assert await call == b"stub"
            assert is_stub(call)
            assert await call.code() is grpc.StatusCode.OK
            assert (await call.trailing_metadata())["x-shadowguard-stub"] == "1"
            chat = channel.stream_stream(CHAT)()
            await chat.write(b"dropped")
            await chat.done_writing()
            assert [await chat.read(), await chat.read()] == [b"s1", b"s2"]
            assert await chat.read() is grpc.aio.EOF
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await channel.stream_unary(UPLOAD)(_requests(b"a"))
            assert failed.value.code() is grpc.StatusCode.PERMISSION_DENIED
            assert failed.value.details() == "read only"
    assert grpc_server.methods() == ["Get", "Watch"]
    assert [hit.metadata.get(MARKER) for hit in grpc_server.hits] == ["1", "1"]
    assert grpc_server.hits[0].metadata["tenant"] == "t1"
    assert [s.detail["action"] for s in scope.suppressed] == ["stubbed"] * 3


@pytest.mark.asyncio
async def test_concurrent_tasks_keep_their_own_shadow_or_primary(grpc_server: GrpcServer) -> None:
    async with grpc.aio.insecure_channel(grpc_server.target) as channel:
        cancel = channel.unary_unary(CANCEL)

        async def as_shadow(i: int) -> str:
            with shadowguard.shadow():
                await asyncio.sleep(0)
                try:
                    await cancel(b"s%d" % i)
                except ShadowSideEffectBlocked:
                    return "blocked"
                return "sent"

        async def as_primary(i: int) -> str:
            await asyncio.sleep(0)
            response: bytes = await cancel(b"p%d" % i)
            return response.decode()

        with installing(sink):
            results = await asyncio.gather(
                *(as_shadow(i) for i in range(5)), *(as_primary(i) for i in range(5))
            )
    assert results == ["blocked"] * 5 + [f"real:p{i}" for i in range(5)]
    assert sorted(h.requests[0] for h in grpc_server.hits) == [b"p%d" % i for i in range(5)]


@pytest.mark.asyncio
async def test_an_aio_interceptor_sees_the_marker_and_cannot_unmark_a_refusal(
    grpc_server: GrpcServer,
) -> None:
    seen: list[Any] = []

    class Watch(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
        async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            seen.append(details.method)
            return await continuation(details, request)

    async with grpc.aio.insecure_channel(grpc_server.target, interceptors=[Watch()]) as channel:
        with installing(sink, allow=[GET]), shadowguard.shadow():
            assert await channel.unary_unary(GET)(b"1") == b"real:1"
            with pytest.raises(ShadowSideEffectBlocked):
                await channel.unary_unary(CANCEL)(b"2")
    assert seen == [GET.encode()]
    assert grpc_server.methods() == ["Get"]
    assert grpc_server.hits[0].metadata[MARKER] == "1"


class _PassThrough(grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_stream(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(details, request_iterator)


@pytest.mark.asyncio
@pytest.mark.parametrize("interceptors", [None, [_PassThrough()]], ids=["plain", "intercepted"])
async def test_a_shadow_request_cannot_write_into_a_stream_primary_opened(
    grpc_server: GrpcServer, interceptors: Any
) -> None:
    async with grpc.aio.insecure_channel(grpc_server.target, interceptors=interceptors) as channel:
        kept = channel.stream_stream(CHAT)()  # opened as primary, e.g. at start-up
        with installing(sink, allow=[CHAT]):
            with shadowguard.shadow() as scope:
                with pytest.raises(ShadowSideEffectBlocked, match="primary code opened"):
                    await kept.write(b"from-shadow")
                # A stream the shadow request opens itself, under an allow rule, takes writes.
                own = channel.stream_stream(CHAT)()
                await own.write(b"own")
                await own.done_writing()
                assert [m async for m in own] == [b"real:own"]
            await kept.write(b"from-primary")
            await kept.done_writing()
            assert [m async for m in kept] == [b"real:from-primary"]
    assert sorted(h.requests for h in grpc_server.hits) == [[b"from-primary"], [b"own"]]
    assert scope.suppressed[0].blocked
    assert scope.suppressed[0].detail["operation"] == "write"


class _Rewrite(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """An interceptor that sends another method than the one called."""

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        rewritten = grpc.aio.ClientCallDetails(
            CANCEL.encode(),
            details.timeout,
            details.metadata,
            details.credentials,
            details.wait_for_ready,
        )
        return await continuation(rewritten, request)


def _collect_refused(calls: list[Any]) -> None:
    """Drop refused intercepted calls and collect them here: grpcio before 1.81 raises the
    interceptor task's exception again from ``InterceptedCall.__del__`` (printed as
    "Exception ignored"), which pytest would pin on whichever test runs at the time."""
    seen: list[Any] = []
    hook, sys.unraisablehook = sys.unraisablehook, seen.append
    try:
        calls.clear()
        gc.collect()
    finally:
        sys.unraisablehook = hook
    assert all(isinstance(u.exc_value, ShadowSideEffectBlocked) for u in seen)


@pytest.mark.asyncio
async def test_a_method_an_interceptor_rewrites_is_judged_on_the_name_it_sends(
    grpc_server: GrpcServer,
) -> None:
    refused: list[Any] = []
    async with grpc.aio.insecure_channel(grpc_server.target, interceptors=[_Rewrite()]) as channel:
        get = channel.unary_unary(GET)
        with installing(sink, allow=[GET]):
            with shadowguard.shadow() as scope:
                refused.append(get(b"rewritten"))
                with pytest.raises(ShadowSideEffectBlocked, match="client interceptor"):
                    await refused[0]
            assert grpc_server.hits == []
            assert scope.suppressed[-1].detail["method"] == CANCEL
            del scope  # its record's traceback holds the refused call
            assert await get(b"primary") == b"real:primary"  # primary: as the interceptor says
        with installing(sink, allow=[GET, CANCEL]), shadowguard.shadow():
            assert await get(b"allowed") == b"real:allowed"
    _collect_refused(refused)
    assert [(h.method, h.metadata.get(MARKER)) for h in grpc_server.hits] == [
        ("Cancel", None),
        ("Cancel", "1"),
    ]
