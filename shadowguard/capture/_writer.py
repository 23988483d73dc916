"""The process's capture writer: a bounded queue and one background thread.

A request hands its finished :class:`~._take.Take` to :func:`submit`, which never waits:
when the queue holds ``queue_size`` records the record is dropped and counted
(``shadowguard.capture_dropped{reason="queue_full"}``, one log line per burst). The
thread builds the records, encodes them and writes each sink's share of a batch in one
call. It runs outside any shadow scope: capturing a shadow request is shadowguard's own
bookkeeping, and is written like any primary work.

:func:`flush` waits until everything queued before it is written; :func:`close` also
closes the sinks and stops the thread, and runs at interpreter exit. A forked child
starts with an empty queue and no thread, and opens its own sinks.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING

from shadowguard.capture._record import build_record
from shadowguard.capture._sinks import Encoded, Sink
from shadowguard.capture_format import encode
from shadowguard.contract import BURST_GAP_SECONDS, Bursts, as_primary, telemetry

if TYPE_CHECKING:
    from shadowguard.capture._capture import Capture
    from shadowguard.capture._take import Take

__all__ = ["BURST_GAP_SECONDS", "EXIT_TIMEOUT_SECONDS", "close", "flush", "pending", "submit"]

logger = logging.getLogger("shadowguard.capture")

#: How long interpreter exit waits for the writer to write what is queued.
EXIT_TIMEOUT_SECONDS = 5.0
#: Records taken from the queue at most per batch (each sink gets one transaction / write).
BATCH_SIZE = 500


@dataclass(slots=True, eq=False)
class _Marker:
    """A flush (or, with ``stop``, a close) request, queued behind the records before it."""

    stop: bool
    done: threading.Event = field(default_factory=threading.Event)


class _State:
    """One process's queue, thread and open sinks."""

    def __init__(self) -> None:
        self.queue: SimpleQueue[Take | _Marker] = SimpleQueue()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()
        #: Open sinks by the capture's sink key; touched by the writer thread only.
        self.sinks: dict[object, Sink] = {}
        self.bursts = Bursts()


_state = _State()
# A forked child never closes what it inherited: the parent's SQLite connection (closing
# it in the child may checkpoint and remove a WAL the parent is using) and file buffers
# (flushing them would write the parent's bytes twice). They stay referenced here.
_inherited: list[_State] = []


def _after_fork() -> None:
    global _state
    _inherited.append(_state)
    _state = _State()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def submit(take: Take, limit: int) -> None:
    """Queue ``take`` for the writer, or drop and count it when ``limit`` records wait."""
    state = _state
    try:
        if state.queue.qsize() >= limit:
            dropped("queue_full", 1, f"{limit} records already wait for the writer")
            return
        state.queue.put(take)
        if state.thread is None:
            _start(state)
    except Exception as exc:  # capture never fails a request (no thread at shutdown, ...)
        dropped("error", 1, f"could not queue it: {exc!r}")


def pending() -> int:
    """Records and markers waiting for the writer in this process (approximate)."""
    return _state.queue.qsize()


def _start(state: _State) -> None:
    with state.lock:
        if state.thread is None:
            thread = threading.Thread(
                target=_run, args=(state,), name="shadowguard-capture", daemon=True
            )
            thread.start()
            state.thread = thread
            # A child started by multiprocessing with fork leaves through os._exit, where no
            # atexit hook runs; multiprocessing runs its own finalizers first.
            mp_util = sys.modules.get("multiprocessing.util")
            if mp_util is not None:
                mp_util.Finalize(None, _at_exit, exitpriority=100)


def flush(timeout: float | None = EXIT_TIMEOUT_SECONDS) -> bool:
    """Wait until every record queued so far is written (or dropped); False on timeout."""
    return _send_marker(_Marker(stop=False), timeout)


def close(timeout: float | None = EXIT_TIMEOUT_SECONDS) -> bool:
    """Flush, close the sinks and stop the writer; False when it did not finish in time.

    Capture goes on afterwards if requests still come: the next one starts a new writer.
    """
    state = _state
    thread = state.thread
    if thread is None:
        return True
    finished = _send_marker(_Marker(stop=True), timeout)
    if finished:
        thread.join(timeout=1.0)
        with state.lock:
            if state.thread is thread:
                state.thread = None
    else:
        logger.warning(
            "shadowguard: capture writer did not finish within %s s (a sink blocks or is slow); "
            "about %d records were not written",
            timeout,
            state.queue.qsize(),
        )
    return finished


def _send_marker(marker: _Marker, timeout: float | None) -> bool:
    state = _state
    if state.thread is None:
        return state.queue.empty()
    state.queue.put(marker)  # markers are never dropped: they carry no record
    return marker.done.wait(timeout)


def _at_exit() -> None:
    if _state.thread is not None:
        close(EXIT_TIMEOUT_SECONDS)


atexit.register(_at_exit)


def _run(state: _State) -> None:
    # A thread that the first (perhaps shadow) request started must not run as shadow.
    with as_primary():
        queue = state.queue
        while True:
            batch = [queue.get()]
            while len(batch) < BATCH_SIZE:
                try:
                    batch.append(queue.get_nowait())
                except Empty:
                    break
            if _handle(state, batch):
                return


def _handle(state: _State, batch: list[Take | _Marker]) -> bool:
    """Write ``batch`` in order, answering its markers; True when asked to stop."""
    takes: list[Take] = []
    for item in batch:
        if not isinstance(item, _Marker):
            takes.append(item)
            continue
        _write(state, takes)
        takes = []
        if item.stop:
            _close_sinks(state)
            item.done.set()
            return True
        item.done.set()
    _write(state, takes)
    return False


def _write(state: _State, takes: list[Take]) -> None:
    if not takes:
        return
    groups: dict[object, tuple[Capture, list[Encoded]]] = {}
    for take in takes:
        try:
            record = build_record(take)
            encoded = Encoded(record, _utf8(encode(record)))
        except Exception as exc:
            dropped("record_error", 1, f"could not build or encode it: {exc!r}")
            continue
        capture = take.capture
        group = groups.get(capture.sink_key)
        if group is None:
            group = groups[capture.sink_key] = (capture, [])
        group[1].append(encoded)
    for key, (capture, encoded_batch) in groups.items():
        try:
            sink = state.sinks.get(key)
            if sink is None:
                sink = state.sinks[key] = capture.open()
            sink.write(encoded_batch)
        except Exception as exc:
            dropped("sink_error", len(encoded_batch), f"writing to {capture!r} failed: {exc!r}")


def _utf8(text: str) -> str:
    """``text`` storable as UTF-8: a lone surrogate (from a JSON body's ``"\\ud800"``)
    becomes its JSON escape again, which every reader decodes back to it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _close_sinks(state: _State) -> None:
    for sink in state.sinks.values():
        try:
            sink.close()
        except Exception:
            logger.warning("shadowguard: could not close capture sink %r", sink, exc_info=True)
    state.sinks.clear()


def dropped(reason: str, count: int, why: str) -> None:
    """Count dropped records; log the first drop of each burst of one reason."""
    telemetry.record_capture_dropped(reason, count)
    previous = _state.bursts.opens(reason, count)
    if previous is None:
        return
    logger.warning(
        "shadowguard: capture dropped %d record(s) (%s): %s; the rest of this burst is counted "
        "in shadowguard.capture_dropped{reason=%s}, not logged%s",
        count,
        reason,
        why,
        reason,
        f" (the previous burst had {previous})" if previous else "",
    )
