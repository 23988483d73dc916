"""What a sink is: where the writer thread puts batches of encoded records."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import NamedTuple, Protocol, runtime_checkable

from shadowguard.capture_format import CaptureRecord
from shadowguard.errors import missing_extra_error

__all__ = ["Encoded", "Sink", "check_sink", "is_sink", "open_sink"]


class Encoded(NamedTuple):
    """A record and its stored form, :func:`shadowguard.capture_format.encode`'s text."""

    record: CaptureRecord
    text: str


@runtime_checkable
class Sink(Protocol):
    """Stores batches of records; called only from the capture writer thread.

    ``write`` stores the whole batch or raises (the batch is then counted as dropped);
    it may block, which delays only the writer: requests never wait for it. ``close`` is
    called on the writer thread at :func:`shadowguard.capture.close` and at exit.
    A sink of one's own must not go through a guarded client (a shadowguard-guarded
    SQLAlchemy engine, producer or HTTP client): in a process that is shadow as a whole
    (``SHADOW_MODE=true``) its writes would be suppressed.
    """

    def write(self, batch: Sequence[Encoded]) -> None: ...

    def close(self) -> None: ...


def is_sink(value: object) -> bool:
    """Does ``value`` look like a :class:`Sink` (callable ``write`` and ``close``)?"""
    return callable(getattr(value, "write", None)) and callable(getattr(value, "close", None))


def check_sink(scheme: str) -> None:
    """At start-up: ImportError naming the extra when the sink's library is missing."""
    if scheme == "kafka" and importlib.util.find_spec("confluent_kafka") is None:
        raise missing_extra_error("confluent_kafka", "kafka")


def open_sink(scheme: str, path: str) -> Sink:
    """The built-in sink for a parsed capture URL (on the writer thread)."""
    if scheme == "kafka":
        from shadowguard.capture._kafka import KafkaSink
        from shadowguard.capture._settings import parse_kafka

        target = parse_kafka(path)
        assert target is not None  # parse_url checked it
        return KafkaSink(target)
    if scheme == "sqlite":
        from shadowguard.capture._sqlite import SqliteSink

        return SqliteSink(path)
    from shadowguard.capture._jsonl import JsonlSink

    return JsonlSink(path)
