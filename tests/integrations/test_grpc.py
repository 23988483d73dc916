"""grpcio (sync) against a real loopback gRPC server: refused or stubbed in shadow, as primary
untouched, allowed reads reach the server with the marker metadata."""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

import shadowguard
from shadowguard import ShadowSideEffectBlocked, configure, is_stub
from shadowguard._config import reset
from shadowguard.contract import is_wrapped
from shadowguard.errors import ConfigError
from shadowguard.integrations import grpc as sink
from tests.integrations._http import suppress_instrumentation
from tests.integrations._support import installing
from tests.peers.grpc_server import OTLP_TRACES, SERVICE, GrpcServer

MARKER = "x-shadow-request"
GET, CANCEL = f"/{SERVICE}/Get", f"/{SERVICE}/Cancel"
WATCH, UPLOAD, CHAT = f"/{SERVICE}/Watch", f"/{SERVICE}/Upload", f"/{SERVICE}/Chat"


@pytest.fixture
def channel(grpc_server: GrpcServer) -> Iterator[Any]:
    """A channel made before install() (as services make theirs at import)."""
    with grpc.insecure_channel(grpc_server.target) as made:
        yield made


def test_every_call_shape_is_refused_in_shadow_and_runs_as_primary(
    channel: Any, grpc_server: GrpcServer
) -> None:
    get, cancel = channel.unary_unary(GET), channel.unary_unary(CANCEL)
    watch, upload, chat = (
        channel.unary_stream(WATCH),
        channel.stream_unary(UPLOAD),
        channel.stream_stream(CHAT),
    )
    with installing(sink):
        with shadowguard.shadow() as scope:
            for attempt in (
                lambda: cancel(b"order-1"),
                lambda: cancel.with_call(b"order-1"),
                lambda: cancel.future(b"order-1"),
                lambda: watch(b"order-1"),
                lambda: upload(iter([b"a", b"b"])),
                lambda: upload.with_call(iter([b"a"])),
                lambda: upload.future(iter([b"a"])),
                lambda: chat(iter([b"a"])),
                lambda: get(b"order-1"),  # no rule names it: refused too
            ):
                with pytest.raises(ShadowSideEffectBlocked, match="no allow or stub rule"):
                    attempt()
        assert grpc_server.hits == []
        assert scope.counts["grpc.call"] == 9
        refusal = scope.suppressed[0]
        assert refusal.blocked
        assert refusal.target == f"{grpc_server.target}{CANCEL}"
        assert refusal.detail["method"] == CANCEL
        assert refusal.detail["call"] == "unary_unary"
        # As primary, with the guard installed, every call reaches the server unchanged.
        assert cancel(b"order-1") == b"real:order-1"
        response, call = cancel.with_call(b"o")
        assert (response, call.code()) == (b"real:o", grpc.StatusCode.OK)
        assert cancel.future(b"f").result() == b"real:f"
        assert list(watch(b"w")) == [b"real-1", b"real-2"]
        assert upload(iter([b"a", b"b"])) == b"real:2"
        assert list(chat(iter([b"x", b"y"]))) == [b"real:x", b"real:y"]
    assert grpc_server.methods() == ["Cancel"] * 3 + ["Watch", "Upload", "Chat"]
    assert all(MARKER not in hit.metadata for hit in grpc_server.hits)


def test_allowed_methods_reach_the_server_with_the_marker(
    channel: Any, grpc_server: GrpcServer
) -> None:
    allow = [GET, sink.GrpcAllow(service=SERVICE, methods=["Watch"])]
    with installing(sink, allow=allow), shadowguard.shadow() as scope:
        assert channel.unary_unary(GET)(b"1", metadata=(("tenant", "t1"),)) == b"real:1"
        assert channel.unary_unary(GET).with_call(b"2", None, (("tenant", "t2"),))[0] == b"real:2"
        assert channel.unary_unary(GET).future(b"3").result() == b"real:3"
        assert list(channel.unary_stream(WATCH)(b"w")) == [b"real-1", b"real-2"]
    assert grpc_server.methods() == ["Get", "Get", "Get", "Watch"]
    assert [hit.metadata.get(MARKER) for hit in grpc_server.hits] == ["1"] * 4
    assert grpc_server.hits[0].metadata["tenant"] == "t1"
    assert grpc_server.hits[1].metadata["tenant"] == "t2"
    assert not scope.suppressed


def test_allow_rules_match_the_exact_method_not_a_prefix_or_a_lookalike(
    channel: Any, grpc_server: GrpcServer
) -> None:
    with installing(sink, allow=[GET]), shadowguard.shadow():
        for method in (
            f"/{SERVICE}/GetAndCancel",
            f"/{SERVICE}/get",
            f"/{SERVICE.upper()}/Get",
            f"/{SERVICE}/Get/../Cancel",
            f"/{SERVICE}/Get/",
            f"//{SERVICE}/Get",
            f"/{SERVICE}/G%65t",
            f"/{SERVICE}/Get\x00",
            f"{SERVICE}/Get",
            "/shop.Orders/G\u0435t",  # a Cyrillic e
        ):
            with pytest.raises(ShadowSideEffectBlocked):
                channel.unary_unary(method)(b"x")
        bad_bytes = f"/{SERVICE}/Get".encode() + b"\xff"
        with pytest.raises(ShadowSideEffectBlocked):
            channel.unary_unary(bad_bytes)(b"x")
        assert channel.unary_unary(GET.encode())(b"ok") == b"real:ok"
    assert grpc_server.methods() == ["Get"]


def test_stubs_answer_without_contacting_the_server(channel: Any, grpc_server: GrpcServer) -> None:
    stubs = [
        sink.GrpcStub(CANCEL, response=b"stub-cancelled"),
        sink.GrpcStub(WATCH, responses=[b"s1", b"s2"]),
        sink.GrpcStub(UPLOAD, respond=lambda it: sink.GrpcReply(b"n=%d" % len(list(it)))),
        sink.GrpcStub(CHAT, code=grpc.StatusCode.NOT_FOUND, details="no such chat"),
        # A stub wins over an allow rule for the same method, as for HTTP.
        sink.GrpcStub(GET, response=b"stub-get"),
    ]
    with installing(sink, allow=[GET], stubs=stubs), shadowguard.shadow() as scope:
        cancel = channel.unary_unary(CANCEL)
        assert cancel(b"o") == b"stub-cancelled"
        response, call = cancel.with_call(b"o")
        assert response == b"stub-cancelled"
        assert call.code() is grpc.StatusCode.OK
        assert dict(call.trailing_metadata())["x-shadowguard-stub"] == "1"
        assert is_stub(call)
        assert cancel.future(b"o").result() == b"stub-cancelled"
        assert list(channel.unary_stream(WATCH)(b"w")) == [b"s1", b"s2"]
        assert channel.stream_unary(UPLOAD)(iter([b"a", b"b", b"c"])) == b"n=3"
        with pytest.raises(grpc.RpcError) as failed:
            list(channel.stream_stream(CHAT)(iter([b"x"])))
        assert failed.value.code() is grpc.StatusCode.NOT_FOUND
        assert failed.value.details() == "no such chat"
        assert channel.unary_unary(GET)(b"x") == b"stub-get"
    assert grpc_server.hits == []
    assert {s.detail["action"] for s in scope.suppressed} == {"stubbed"}
    assert scope.suppressed[0].detail["rule"] == CANCEL
    assert scope.counts["grpc.call"] == 7


def test_a_stub_whose_respond_fails_fails_closed_and_is_recorded(
    channel: Any, grpc_server: GrpcServer
) -> None:
    def broken(request: Any) -> Any:
        raise RuntimeError("boom")

    stubs = [
        sink.GrpcStub(CANCEL, respond=broken),
        sink.GrpcStub(GET, respond=lambda r: b"not a reply"),  # type: ignore[arg-type,return-value]
    ]
    with installing(sink, stubs=stubs), shadowguard.shadow() as scope:
        with pytest.raises(RuntimeError, match="boom"):
            channel.unary_unary(CANCEL)(b"x")
        with pytest.raises(TypeError, match="GrpcReply"):
            channel.unary_unary(GET)(b"x")
    assert grpc_server.hits == []
    assert isinstance(scope.suppressed[0].error, RuntimeError)


def test_the_marker_carries_the_secret_only_where_forwarded_and_replaces_a_forwarded_one(
    channel: Any, grpc_server: GrpcServer
) -> None:
    allow = [sink.GrpcAllow(GET, target=grpc_server.target, forward_secret=True), WATCH]
    with installing(sink, allow=allow):
        try:
            configure(marker_secret="s3cret")
            with shadowguard.shadow():
                channel.unary_unary(GET)(b"1")
                # Incoming metadata forwarded wholesale must not leak the secret elsewhere.
                list(channel.unary_stream(WATCH)(b"2", metadata=((MARKER, "s3cret"),)))
            configure(marker_header="")
            with shadowguard.shadow():
                channel.unary_unary(GET)(b"3")
        finally:
            reset()
    assert [hit.metadata.get(MARKER) for hit in grpc_server.hits] == ["s3cret", "1", None]


def test_an_allow_rule_for_another_target_does_not_let_the_call_out(
    channel: Any, grpc_server: GrpcServer
) -> None:
    allow = [sink.GrpcAllow(GET, target="orders.internal:443")]
    with (
        installing(sink, allow=allow),
        shadowguard.shadow(),
        pytest.raises(ShadowSideEffectBlocked),
    ):
        channel.unary_unary(GET)(b"x")
    assert grpc_server.hits == []


def test_intercepted_channels_are_judged_on_the_method_the_interceptor_sends(
    channel: Any, grpc_server: GrpcServer
) -> None:
    Fields = collections.namedtuple(
        "Fields",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    )

    class Rewriting(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
        def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            new = Fields(CANCEL, *(getattr(details, f) for f in Fields._fields[1:]))
            return continuation(new, request)

    intercepted = grpc.intercept_channel(channel, Rewriting())
    with (
        installing(sink, allow=[GET]),
        shadowguard.shadow() as scope,
        pytest.raises(ShadowSideEffectBlocked),
    ):
        intercepted.unary_unary(GET)(b"x")
    assert grpc_server.hits == []
    assert scope.suppressed[0].detail["method"] == CANCEL


def test_threads_are_shadow_only_with_propagate(channel: Any, grpc_server: GrpcServer) -> None:
    outcomes: list[str] = []

    def call() -> None:
        try:
            outcomes.append(channel.unary_unary(CANCEL)(b"t").decode())
        except ShadowSideEffectBlocked:
            outcomes.append("blocked")

    with installing(sink), shadowguard.shadow():
        shadowed = threading.Thread(target=shadowguard.propagate(call))
        shadowed.start()
        shadowed.join()
        plain = threading.Thread(target=call)  # a plain thread starts as primary
        plain.start()
        plain.join()
    assert outcomes == ["blocked", "real:t"]
    assert grpc_server.methods() == ["Cancel"]


def test_install_is_idempotent_reversible_and_validates_its_rules() -> None:
    from grpc import _channel

    original = vars(_channel._UnaryUnaryMultiCallable)["__call__"]
    sink.install()
    sink.install()
    try:
        assert vars(_channel._UnaryUnaryMultiCallable)["__call__"] is not original
    finally:
        sink.uninstall()
    assert vars(_channel._UnaryUnaryMultiCallable)["__call__"] is original
    for bad in (
        {"allow": [f"/{SERVICE}/*"]},
        {"allow": [f"/{SERVICE}/Get*"]},
        {"allow": [f"{SERVICE}/Get"]},
        {"allow": [f"/{SERVICE}"]},
        {"allow": GET},
        {"allow": [42]},
        {"stubs": [object()]},
        {"telemetry_exports": "yes"},
    ):
        with pytest.raises(ConfigError):
            sink.install(**bad)
        sink.uninstall()
    for rule in (
        lambda: sink.GrpcAllow(methods=[]),
        lambda: sink.GrpcAllow(methods=["Get"], service="shop.*"),
        lambda: sink.GrpcAllow(methods=["Get*"], service=SERVICE),
        lambda: sink.GrpcStub(GET, code="NOPE"),
        lambda: sink.GrpcStub("Get", response=b""),
        lambda: sink.GrpcStub(WATCH, responses=b"not a sequence"),
    ):
        with pytest.raises(ConfigError):
            rule()


OTLP_EXPORT = f"/{OTLP_TRACES}/Export"


def test_otlp_exports_to_the_configured_endpoint_go_out_and_nothing_else_does(
    channel: Any, grpc_server: GrpcServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    export = channel.unary_unary(OTLP_EXPORT)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{grpc_server.target}")
    with installing(sink), shadowguard.shadow():
        with suppress_instrumentation():
            assert export(b"spans") == b"real:spans"
            with pytest.raises(ShadowSideEffectBlocked):
                channel.unary_unary(CANCEL)(b"x")  # the key opens no other method
        with pytest.raises(ShadowSideEffectBlocked):
            export(b"not from an exporter")  # the method without the key
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector.internal:4317")
        with suppress_instrumentation(), pytest.raises(ShadowSideEffectBlocked):
            export(b"to another target")
    with installing(sink, telemetry_exports=False), shadowguard.shadow():
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", grpc_server.target)
        with suppress_instrumentation(), pytest.raises(ShadowSideEffectBlocked):
            export(b"exemption off")
    assert [h.requests for h in grpc_server.hits] == [[b"spans"]]


def test_a_shadow_mode_process_refuses_on_every_thread(
    channel: Any, grpc_server: GrpcServer
) -> None:
    outcomes: list[str] = []

    def call() -> None:
        try:
            channel.unary_unary(CANCEL)(b"t")
            outcomes.append("sent")
        except ShadowSideEffectBlocked:
            outcomes.append("blocked")

    with installing(sink):
        try:
            configure(mode="shadow")
            worker = threading.Thread(target=call)  # a plain thread: shadow too, process-wide
            worker.start()
            worker.join()
            call()
        finally:
            reset()
        call()
    assert outcomes == ["blocked", "blocked", "sent"]
    assert grpc_server.methods() == ["Cancel"]


def test_registered_methods_of_generated_code_are_guarded(
    channel: Any, grpc_server: GrpcServer
) -> None:
    """Generated stubs (grpcio-tools 1.62 and later) ask for registered call handles."""
    cancel = channel.unary_unary(CANCEL, _registered_method=True)
    get = channel.unary_unary(GET, _registered_method=True)
    with installing(sink, allow=[GET]), shadowguard.shadow():
        with pytest.raises(ShadowSideEffectBlocked):
            cancel(b"x")
        assert get(b"y") == b"real:y"
    assert grpc_server.methods() == ["Get"]


def test_known_limit_a_bound_method_taken_before_install_keeps_the_original(
    channel: Any, grpc_server: GrpcServer
) -> None:
    """Documented: ``cancel = stub.Cancel.future`` at import keeps grpc's own method; the
    multicallable itself (``stub.Cancel``) kept at import is guarded."""
    multicallable = channel.unary_unary(CANCEL)
    early_future = multicallable.future
    with installing(sink), shadowguard.shadow():
        with pytest.raises(ShadowSideEffectBlocked):
            multicallable.future(b"guarded")
        assert early_future(b"escapes").result() == b"real:escapes"
    assert [h.requests for h in grpc_server.hits] == [[b"escapes"]]


def test_the_single_threaded_unary_stream_option_is_guarded_too(grpc_server: GrpcServer) -> None:
    options = [(grpc.experimental.ChannelOptions.SingleThreadedUnaryStream, 1)]
    with grpc.insecure_channel(grpc_server.target, options=options) as single:
        watch = single.unary_stream(WATCH)
        assert type(watch).__name__ == "_SingleThreadedUnaryStreamMultiCallable"
        with installing(sink, stubs=[sink.GrpcStub(WATCH, responses=[b"s"])]):
            with shadowguard.shadow():
                assert list(watch(b"w")) == [b"s"]
            assert list(watch(b"w")) == [b"real-1", b"real-2"]
    assert grpc_server.methods() == ["Watch"]


def test_a_grpc_without_a_multicallable_class_refuses_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fail loudly at start-up rather than let calls go around a seam that moved."""
    from grpc import _channel

    monkeypatch.delattr(_channel, "_StreamStreamMultiCallable")
    with pytest.raises(ImportError, match="_StreamStreamMultiCallable"):
        sink.install()
    # The half-done install was undone: no class keeps a hook.
    assert not any(
        is_wrapped(vars(cls).get("__call__"))
        for cls in (_channel._UnaryUnaryMultiCallable, _channel._UnaryStreamMultiCallable)
    )


def test_calls_by_keyword_pass_through_as_primary_and_are_judged_in_shadow(
    channel: Any, grpc_server: GrpcServer
) -> None:
    get, upload = channel.unary_unary(GET), channel.stream_unary(UPLOAD)
    chat = channel.stream_stream(CHAT)
    with installing(sink, allow=[GET, CHAT]):
        assert get(request=b"k", timeout=5, metadata=(("tenant", "t"),)) == b"real:k"
        assert upload(request_iterator=iter([b"a"]), timeout=5) == b"real:1"
        with shadowguard.shadow():
            assert get(request=b"s", timeout=5, metadata=(("tenant", "t"),)) == b"real:s"
            assert list(chat(iter([b"c"]), 5, ())) == [b"real:c"]  # metadata positional
            with pytest.raises(ShadowSideEffectBlocked):
                upload(request_iterator=iter([b"b"]))
    assert [h.metadata.get(MARKER) for h in grpc_server.hits] == [None, None, "1", "1"]
    assert grpc_server.hits[2].metadata["tenant"] == "t"
