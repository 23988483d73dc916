"""Telemetry tags shadow spans and counts suppressions, and never raises into the app."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace

from shadowguard import record_suppression, shadow, telemetry

tracer = trace.get_tracer("tests")


def _points(reader: Any, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    if data is None:
        return []
    return [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == name
        for p in m.data.data_points
    ]


@pytest.mark.parametrize(
    ("kind", "attribute"),
    [
        ("db.commit", "db.write_suppressed"),
        ("kafka.produce", "messaging.publish_suppressed"),
        ("http.request", "http.request_stubbed"),
        ("call", "shadowguard.call_suppressed"),
        ("mail.send", "mail.send_suppressed"),
    ],
)
def test_suppression_tags_span_and_counts(
    span_exporter: Any, metric_reader: Any, kind: str, attribute: str
) -> None:
    before = sum(
        p.value
        for p in _points(metric_reader, "shadowguard.suppressed")
        if p.attributes["kind"] == kind
    )
    with tracer.start_as_current_span("request"), shadow():
        record_suppression(kind, "target-1", error=ValueError("bad"))
    (span,) = span_exporter.get_finished_spans()
    assert span.attributes["shadow_mode"] is True
    assert span.attributes[attribute] is True
    (event,) = span.events
    assert event.name == "shadowguard.suppressed"
    assert event.attributes["kind"] == kind
    assert event.attributes["target"] == "target-1"
    assert event.attributes["error"] == "ValueError"
    points = [
        p for p in _points(metric_reader, "shadowguard.suppressed") if p.attributes["kind"] == kind
    ]
    assert sum(p.value for p in points) == before + 1
    assert all(p.attributes["shadow"] is True for p in points)


def test_entering_shadow_marks_current_span(span_exporter: Any) -> None:
    with tracer.start_as_current_span("request"), shadow():
        pass
    with tracer.start_as_current_span("primary"):
        pass
    shadow_span, primary_span = span_exporter.get_finished_spans()
    assert shadow_span.attributes["shadow_mode"] is True
    assert "shadow_mode" not in primary_span.attributes


def test_telemetry_fails_open(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("exporter down")

    monkeypatch.setattr(telemetry._suppressed_counter, "add", broken)
    monkeypatch.setattr(trace, "get_current_span", broken)
    caplog.set_level("DEBUG", logger="shadowguard.telemetry")
    with shadow() as scope:
        record_suppression("call", "f")
    assert scope.total == 1
    assert "could not" in caplog.text


def test_request_duration_histogram(metric_reader: Any) -> None:
    telemetry.record_request_duration(0.25, shadow=True, route="/orders", status=201)
    points = [
        p
        for p in _points(metric_reader, "shadowguard.request.duration")
        if p.attributes.get("http.route") == "/orders"
    ]
    assert points
    assert points[0].attributes["shadow"] is True
    assert points[0].attributes["http.response.status_code"] == 201
