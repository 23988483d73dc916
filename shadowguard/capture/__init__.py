"""Capture: one record per request, written off the request path, for ``shadowguard compare``.

Turned on with ``SHADOWGUARD_CAPTURE=<url>`` or a middleware's ``capture=`` option; the
record format is :mod:`shadowguard.capture_format`. The seams, in call order:

``_settings``
    The ``SHADOWGUARD_CAPTURE*`` variables and :class:`CaptureSettings`, checked at start-up.
``_capture``
    :class:`Capture`, what a middleware holds, and :func:`capture_from` for its option.
``_take``
    A request in progress: status, headers and body chunks as the framework gave them.
``_writer``
    The bounded queue and the one writer thread per process; drops are counted.
``_record``, ``_body``, ``_redact``
    On the writer thread: the record built from a take, the body decoded, fields redacted.
``_sinks``, ``_sqlite``, ``_jsonl``, ``_kafka``
    Where batches go: the :class:`Sink` protocol, the SQLite file, the JSON lines directory,
    a Kafka topic.
``_reader``
    :func:`read_records`, the records back from the SQLite or JSON lines sink.
``_runs``
    :func:`record_run`, an experiment run as a ``control`` and a ``candidate`` record.
``_messages``
    :class:`handled`, a message a worker handles as a record keyed by the message's id.
"""

from __future__ import annotations

from shadowguard.capture._capture import Capture, capture_from
from shadowguard.capture._messages import handled
from shadowguard.capture._reader import OnError, read_records
from shadowguard.capture._redact import REDACTED
from shadowguard.capture._runs import record_run
from shadowguard.capture._settings import (
    DEFAULT_HEADERS,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_QUEUE_SIZE,
    DEFAULT_REDACT,
    ENV_CAPTURE,
    ENV_CAPTURE_HEADERS,
    ENV_CAPTURE_LABEL,
    ENV_CAPTURE_MAX_BODY,
    ENV_CAPTURE_QUEUE,
    ENV_CAPTURE_REDACT,
    CaptureSettings,
)
from shadowguard.capture._sinks import Encoded, Sink
from shadowguard.capture._sqlite import TABLE
from shadowguard.capture._take import Take
from shadowguard.capture._writer import close, flush

__all__ = [
    "DEFAULT_HEADERS",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_QUEUE_SIZE",
    "DEFAULT_REDACT",
    "ENV_CAPTURE",
    "ENV_CAPTURE_HEADERS",
    "ENV_CAPTURE_LABEL",
    "ENV_CAPTURE_MAX_BODY",
    "ENV_CAPTURE_QUEUE",
    "ENV_CAPTURE_REDACT",
    "REDACTED",
    "TABLE",
    "Capture",
    "CaptureSettings",
    "Encoded",
    "OnError",
    "Sink",
    "Take",
    "capture_from",
    "close",
    "flush",
    "handled",
    "read_records",
    "record_run",
]
