"""grpcio: in shadow, gRPC calls are refused unless a rule names their method.

A shadow call (unary or streaming, sync or ``grpc.aio``) goes out only if a
:class:`GrpcAllow` rule names its full method name exactly (``/shop.Orders/Get``), and then
carries the shadow marker as metadata; a :class:`GrpcStub` rule answers it without
contacting the server; any other call raises ShadowSideEffectBlocked before a byte is
sent. Each stubbed or refused call is recorded as ``Suppression(kind="grpc.call")`` naming
the channel target and the method. The rules live in ``shadowguard._outbound`` with the
HTTP ones.

The seams, one module each:

- ``_sync``: the multicallable classes of ``grpc._channel`` (``__call__``, ``with_call``,
  ``future``), which every sync call goes through, interceptors included;
- ``_aio``: the four multicallable classes of ``grpc.aio``;
- ``_common``: the installed rules and the decision both share.

The patches are on classes, so channels and stubs made before ``install()`` are covered
and there is no per-channel ``guard()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shadowguard._outbound import GrpcAllow, GrpcReply, GrpcRules, GrpcStub
from shadowguard.contract import Patches, missing_extra_error

try:
    import grpc
    import grpc.aio  # noqa: F401
except ImportError:  # pragma: no cover - exercised only without the extra
    raise missing_extra_error("grpc", "grpcio") from None

from shadowguard.integrations.grpc import _aio, _sync
from shadowguard.integrations.grpc._common import STATE

__all__ = ["GrpcAllow", "GrpcReply", "GrpcStub", "install", "uninstall"]

_patches = Patches("grpc")


def _apply(
    *,
    allow: Iterable[GrpcAllow | str] = (),
    stubs: Iterable[GrpcStub] = (),
    telemetry_exports: bool = True,
) -> None:
    STATE.rules = GrpcRules(allow, stubs, telemetry_exports=telemetry_exports)
    _sync.patch(_patches)
    _aio.patch(_patches)


def install(**options: Any) -> None:
    """Guard every gRPC channel, sync and ``grpc.aio``; idempotent.

    ``allow``: :class:`GrpcAllow` rules or full method names (``"/shop.Orders/Get"``) of
    methods that change nothing, which shadow calls may really make. ``stubs``:
    :class:`GrpcStub` rules answering methods without contacting the server. Every other
    shadow call is refused. ``telemetry_exports`` (default True): the OpenTelemetry SDK's
    OTLP/gRPC exports to the configured ``OTEL_EXPORTER_OTLP_*ENDPOINT`` go out unjudged.
    """
    _patches.install(_apply, options)


def _forget_rules() -> None:
    STATE.rules = GrpcRules()


def uninstall() -> None:
    """Restore grpc as it was before :func:`install`."""
    _patches.uninstall(after=_forget_rules)
