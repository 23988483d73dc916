"""What a sink is: where the writer thread puts batches of encoded records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol, runtime_checkable

from shadowguard.capture_format import CaptureRecord

__all__ = ["Encoded", "Sink", "is_sink", "open_sink"]


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


def open_sink(scheme: str, path: str) -> Sink:
    """The built-in sink for a parsed capture URL (on the writer thread)."""
    if scheme == "sqlite":
        from shadowguard.capture._sqlite import SqliteSink

        return SqliteSink(path)
    from shadowguard.capture._jsonl import JsonlSink

    return JsonlSink(path)
