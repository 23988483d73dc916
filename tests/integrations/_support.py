"""Helpers the integration tests share."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any


@contextlib.contextmanager
def installing(sink: ModuleType, **options: Any) -> Iterator[ModuleType]:
    """``sink`` installed with ``options`` for the block, uninstalled after it."""
    sink.install(**options)
    try:
        yield sink
    finally:
        sink.uninstall()


@contextlib.contextmanager
def suppress_instrumentation() -> Iterator[None]:
    """OpenTelemetry's suppress-instrumentation key, as its exporters (or any code) set it."""
    from opentelemetry import context as otel_context
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

    token = otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        yield
    finally:
        otel_context.detach(token)
