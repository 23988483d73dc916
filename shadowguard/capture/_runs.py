"""Experiment runs as capture records: a ``control`` and a ``candidate`` record per run.

Both records of a run share one request id, so ``shadowguard compare --baseline control
--candidate candidate`` pairs and diffs them like a mirrored request; the route is
``experiment:<name>`` and the method ``RUN``. A side that raised has no status.
"""

from __future__ import annotations

import logging
import uuid
from time import perf_counter
from typing import Any, Protocol

from shadowguard.capture._capture import Capture
from shadowguard.capture._take import Take
from shadowguard.contract import Scope

__all__ = ["record_run"]

logger = logging.getLogger("shadowguard.capture")


class Observed(Protocol):
    """What one side of a run did (:class:`shadowguard.experiment.Observation`)."""

    @property
    def value(self) -> Any: ...
    @property
    def exception(self) -> BaseException | None: ...
    @property
    def duration(self) -> float: ...
    @property
    def scope(self) -> Scope | None: ...


def record_run(capture: Capture, name: str, control: Observed, candidate: Observed) -> None:
    """Queue the two records of one experiment run. Never raises, never blocks."""
    try:
        request_id = f"{name}-{uuid.uuid4().hex}"
        for label, observed in (("control", control), ("candidate", candidate)):
            _take(capture, name, request_id, label, observed)
    except Exception:
        logger.debug("shadowguard: could not capture an experiment run", exc_info=True)


def _take(capture: Capture, name: str, request_id: str, label: str, observed: Observed) -> None:
    route = f"experiment:{name}"
    take = Take(capture, label, "RUN", route, request_id)
    end = perf_counter()
    take.start, take.end = end - observed.duration, end
    if observed.exception is None:
        take.status = 200
        take.result(observed.value)
    take.finish(route, observed.scope, observed.exception)
