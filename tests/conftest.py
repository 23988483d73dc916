from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import shadowguard
from shadowguard import _config, _context, _patching

pytest_plugins = [
    "tests.peers.envoy",
    "tests.peers.grpc_server",
    "tests.peers.http",
    "tests.peers.kafka",
    "tests.peers.mariadb",
    "tests.peers.moto",
    "tests.peers.postgres",
    "tests.peers.postgres_cluster",
    "tests.peers.rabbitmq",
    "tests.peers.redis",
    "tests.peers.smtp",
    "tests.peers.werkzeug",
    "tests.peers.celery_brokers",  # after tests.peers.redis, which it imports
]

# The OpenTelemetry globals can be set once per process: one in-memory SDK for all tests.
SPAN_EXPORTER = InMemorySpanExporter()
_tracer_provider = TracerProvider()
_tracer_provider.add_span_processor(SimpleSpanProcessor(SPAN_EXPORTER))
trace.set_tracer_provider(_tracer_provider)
METRIC_READER = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[METRIC_READER]))


@pytest.fixture
def span_exporter() -> Iterator[InMemorySpanExporter]:
    SPAN_EXPORTER.clear()
    yield SPAN_EXPORTER
    SPAN_EXPORTER.clear()


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    return METRIC_READER


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    """No test leaves a patch installed, a scope entered or settings configured."""
    patches_before = _patching.active_patch_sets()
    installed_before = shadowguard.installed()
    yield
    assert _context.current_scope() is None, "a shadow scope leaked out of the test"
    assert shadowguard.installed() == installed_before, "an integration stayed installed"
    assert _patching.active_patch_sets() == patches_before, "a patch leaked out of the test"
    if _config._settings is not None and _config._settings != _config.Settings.from_env():
        _config.reset()
        pytest.fail(
            "configure() settings leaked out of the test (call shadowguard._config.reset())"
        )
    _config.reset()
