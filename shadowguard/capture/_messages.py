"""Messages a worker handles, as capture records: one per message, keyed by its position.

A primary worker and a shadow worker that read the same messages (a Kafka topic read by
the primary's group and by the shadow's, a fanout exchange feeding the primary's queue and
a mirror queue) each record every message they handle under the message's own id, which is
the same on both sides: ``shadowguard compare`` pairs them like mirrored requests and
compares outcomes and handling time per source. The method is ``CONSUME``, the route the
source (topic or queue), the status 200 when the handler returned and none when it raised.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

from shadowguard.capture._capture import Capture, capture_from
from shadowguard.capture._take import Take
from shadowguard.contract import is_shadow, scope_now

__all__ = ["handled"]

logger = logging.getLogger("shadowguard.capture")

_UNSET: Any = object()
_process_default: Capture | bool | None = False  # False: not read yet


def _default() -> Capture | None:
    """The capture ``SHADOWGUARD_CAPTURE*`` asks for, read once per process."""
    global _process_default
    if _process_default is False:
        _process_default = capture_from(None)
    return _process_default if isinstance(_process_default, Capture) else None


class handled:
    """Record the handling of one message (a context manager; a no-op with capture off)::

        from shadowguard.capture import handled

        for message in consumer:
            with handled(message.topic(), message_id(message)) as record:
                record.result = handle(message)

    ``message_id`` must name the message the same way on every side: for Kafka
    ``f"{topic}/{partition}/{offset}"``, for RabbitMQ the ``message_id`` property the
    producer set, for Celery the task id. Set ``result`` to compare outcomes (JSON when it
    encodes, like a response body); leave it unset to compare handling time and errors only.
    The side is the capture label, by default ``shadow`` when the message is handled in a
    shadow scope or process and ``primary`` otherwise. ``capture`` takes what a middleware's
    ``capture=`` takes; None uses ``SHADOWGUARD_CAPTURE``, read at the first message.
    Recording never raises into the handler and never swallows its exception.
    """

    __slots__ = ("_capture", "_source", "_take", "message_id", "result")

    def __init__(self, source: str, message_id: str, *, capture: Any = None) -> None:
        self._capture = _default() if capture is None else capture_from(capture)
        self._source = source
        self.message_id = message_id
        self.result: Any = _UNSET
        self._take: Take | None = None

    def __enter__(self) -> handled:
        if self._capture is not None:
            self._take = self._capture.start(is_shadow(), "CONSUME", self._source, self.message_id)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        take = self._take
        if take is None:
            return
        try:
            if error is None:
                take.status = 200
                if self.result is not _UNSET:
                    take.result(self.result)
            take.body_done()
            take.finish(self._source, scope_now(), error)
        except Exception:
            logger.debug("shadowguard: could not capture a handled message", exc_info=True)
