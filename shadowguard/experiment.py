"""In-process experiments: run a candidate beside the control, as shadow, and compare them.

Like GitHub's Scientist, but the candidate may write: it runs inside a shadow scope, so the
installed guards validate and roll back its database writes, serialize and drop its
messages and stub its outbound calls. The caller always gets the control's result.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from opentelemetry import metrics

from shadowguard._fieldpaths import IgnoreRules, collapsed, concrete, walk
from shadowguard.capture import Capture, capture_from, record_run
from shadowguard.contract import Scope, Suppression, shadow, telemetry
from shadowguard.errors import ConfigError

__all__ = ["ENV_EXPERIMENTS", "Difference", "Experiment", "Observation", "Result"]

T = TypeVar("T")
logger = logging.getLogger("shadowguard.experiment")

#: ``off`` turns every experiment off; ``name=fraction,...`` overrides the sample of each
#: named experiment (``checkout=0.1,search=0``). Read when an :class:`Experiment` is made.
ENV_EXPERIMENTS = "SHADOWGUARD_EXPERIMENTS"
ORDERS = ("control-first", "candidate-first", "random")

_meter = metrics.get_meter("shadowguard")
_runs = _meter.create_counter(
    "shadowguard.experiment.runs",
    unit="{run}",
    description="Experiment runs by outcome: matched, mismatched",
)
_durations = telemetry.seconds_histogram(
    _meter,
    "shadowguard.experiment.duration",
    "Duration of each side of an experiment run (control, candidate)",
)


@dataclass(frozen=True)
class Observation:
    """What one side did: its value or exception, how long it took, what it suppressed."""

    value: Any
    exception: BaseException | None
    duration: float
    suppressed: tuple[Suppression, ...] = ()
    scope: Scope | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Difference:
    """One place where the candidate's value differs: ``path`` as ``shadowguard compare``
    writes field paths (``items[].price``), ``at`` the concrete one (``items[2].price``)."""

    path: str
    at: str
    control: Any
    candidate: Any


@dataclass(frozen=True)
class Result:
    """One experiment run, as ``publish`` receives it."""

    name: str
    matched: bool
    diffs: tuple[Difference, ...]
    control: Observation
    candidate: Observation


@dataclass
class Experiment:
    """Run ``candidate`` beside ``control`` with the same arguments; return the control's result.

    ``compare(control_value, candidate_value) -> bool`` decides a match (default: no
    difference outside ``ignore``, field-path globs as ``shadowguard compare --ignore``
    takes them). ``clean`` turns each value into what is compared (an ORM row into a
    dict). ``sample`` is the share of calls that run the candidate (a float, or a callable
    read at each call, for a feature flag); ``enabled = False`` or ``SHADOWGUARD_EXPERIMENTS``
    turn it off without a deploy. ``publish`` receives each :class:`Result`; an exception it
    raises is logged, never raised. ``order``: which side runs first in :meth:`run`.
    ``capture``: where each run's two records go (``control`` and ``candidate`` labels, for
    ``shadowguard compare``), as a middleware's ``capture=`` takes it; by default
    ``SHADOWGUARD_CAPTURE``, and ``False`` turns it off.
    """

    name: str
    compare: Callable[[Any, Any], bool] | None = None
    ignore: Iterable[str] = ()
    sample: float | Callable[[], float] = 1.0
    publish: Callable[[Result], object] | None = None
    clean: Callable[[Any], Any] | None = None
    order: str = "control-first"
    enabled: bool = True
    capture: Any = None
    _ignore: Any = field(init=False, repr=False, default=None)
    _attributes: dict[str, Mapping[str, Any]] = field(init=False, repr=False, default_factory=dict)
    _capture: Capture | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"Experiment name={self.name!r} is not valid: give a non-empty str")
        if self.order not in ORDERS:
            raise ConfigError(
                f"Experiment order={self.order!r} is not valid: accepted values are "
                + ", ".join(ORDERS)
            )
        if not callable(self.sample):
            self.sample = _fraction(self.sample, f"Experiment {self.name!r} sample")
        self.ignore = tuple(self.ignore)
        override = _sample_from_environment(self.name)
        if override is not None:
            self.sample = override
        for side in ("control", "candidate"):
            self._attributes[side] = {"experiment": self.name, "side": side}
        for outcome in ("matched", "mismatched"):
            self._attributes[outcome] = {"experiment": self.name, "outcome": outcome}
        self._capture = capture_from(self.capture)

    def _chosen(self) -> bool:
        if not self.enabled:
            return False
        sample = self.sample() if callable(self.sample) else self.sample
        return sample >= 1.0 or (sample > 0.0 and random.random() < sample)

    def run(
        self, control: Callable[..., T], candidate: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> T:
        """Call both; return the control's value or raise its exception."""
        if not self._chosen():
            return control(*args, **kwargs)
        candidate_first = self.order == "candidate-first" or (
            self.order == "random" and random.random() < 0.5
        )
        if candidate_first:
            tried = self._candidate(candidate, args, kwargs)
            observed = _observe(control, args, kwargs)
        else:
            observed = _observe(control, args, kwargs)
            tried = self._candidate(candidate, args, kwargs)
        self._report(observed, tried)
        outcome: T = _outcome(observed)
        return outcome

    async def arun(
        self,
        control: Callable[..., Awaitable[T]],
        candidate: Callable[..., Awaitable[Any]],
        /,
        *args: Any,
        concurrent: bool = False,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> T:
        """:meth:`run` for coroutine functions.

        ``concurrent``: run the candidate as a task beside the control, so its time does not
        add to the caller's. ``timeout``: cancel a candidate still running this many seconds
        after the control finished (it is reported as ``TimeoutError``).
        """
        if not self._chosen():
            return await control(*args, **kwargs)
        if concurrent:
            task = asyncio.ensure_future(self._acandidate(candidate, args, kwargs))
            observed = await _aobserve(control, args, kwargs)
            tried = await _within(task, timeout)
        elif self.order == "candidate-first":
            tried = await _within(
                asyncio.ensure_future(self._acandidate(candidate, args, kwargs)), timeout
            )
            observed = await _aobserve(control, args, kwargs)
        else:
            observed = await _aobserve(control, args, kwargs)
            tried = await _within(
                asyncio.ensure_future(self._acandidate(candidate, args, kwargs)), timeout
            )
        self._report(observed, tried)
        outcome: T = _outcome(observed)
        return outcome

    def _candidate(self, candidate: Callable[..., Any], args: Any, kwargs: Any) -> Observation:
        started = time.perf_counter()
        with shadow(f"experiment:{self.name}") as scope:
            try:
                value, error = candidate(*args, **kwargs), None
            except Exception as exc:
                value, error = None, exc
        elapsed = time.perf_counter() - started
        return Observation(value, error, elapsed, tuple(scope.suppressed), scope)

    async def _acandidate(
        self, candidate: Callable[..., Awaitable[Any]], args: Any, kwargs: Any
    ) -> Observation:
        started = time.perf_counter()
        with shadow(f"experiment:{self.name}") as scope:
            try:
                value, error = await candidate(*args, **kwargs), None
            except Exception as exc:
                value, error = None, exc
        elapsed = time.perf_counter() - started
        return Observation(value, error, elapsed, tuple(scope.suppressed), scope)

    def _report(self, control: Observation, candidate: Observation) -> None:
        try:
            matched, diffs = self._judge(control, candidate)
        except Exception as exc:  # a failing compare or clean is a mismatch, never the caller's
            logger.warning("shadowguard: experiment %r could not compare: %r", self.name, exc)
            matched, diffs = False, ()
        result = Result(self.name, matched, diffs, control, candidate)
        try:
            _runs.add(1, self._attributes["matched" if matched else "mismatched"])
            _durations.record(control.duration, self._attributes["control"])
            _durations.record(candidate.duration, self._attributes["candidate"])
        except Exception:
            logger.debug("shadowguard: could not record an experiment run", exc_info=True)
        if self._capture is not None:
            record_run(self._capture, self.name, control, candidate)
        if self.publish is not None:
            try:
                self.publish(result)
            except Exception:
                logger.exception("shadowguard: experiment %r: publish failed", self.name)

    def _judge(
        self, control: Observation, candidate: Observation
    ) -> tuple[bool, tuple[Difference, ...]]:
        if control.exception is not None or candidate.exception is not None:
            a, b = control.exception, candidate.exception
            same = type(a) is type(b) and (a is None or a.args == b.args)  # type: ignore[union-attr]
            return same, ()
        a, b = control.value, candidate.value
        if self.clean is not None:
            a, b = self.clean(a), self.clean(b)
        diffs = self._differences(a, b)
        if self.compare is not None:
            return bool(self.compare(a, b)), diffs or ()
        if diffs is None:
            return a == b, ()
        return not diffs, diffs

    def _differences(self, a: Any, b: Any) -> tuple[Difference, ...] | None:
        """Field-path differences of two JSON-like values; None when they are not JSON-like."""
        if not (_json_like(a) and _json_like(b)):
            return None
        if self._ignore is None:
            self._ignore = IgnoreRules(self.ignore)
        found = []
        for parts, x, y in walk(a, b):
            path = collapsed(parts)
            if not self._ignore(path):
                found.append(Difference(path, concrete(parts), x, y))
        return tuple(found)


def _observe(function: Callable[..., Any], args: Any, kwargs: Any) -> Observation:
    started = time.perf_counter()
    try:
        value, error = function(*args, **kwargs), None
    except BaseException as exc:  # the control's own: raised to the caller afterwards
        value, error = None, exc
    return Observation(value, error, time.perf_counter() - started)


async def _aobserve(function: Callable[..., Awaitable[Any]], args: Any, kwargs: Any) -> Observation:
    started = time.perf_counter()
    try:
        value, error = await function(*args, **kwargs), None
    except BaseException as exc:
        value, error = None, exc
    return Observation(value, error, time.perf_counter() - started)


async def _within(task: asyncio.Future[Observation], timeout: float | None) -> Observation:
    try:
        return await asyncio.wait_for(task, timeout)
    except asyncio.TimeoutError as exc:
        return Observation(None, exc, float(timeout or 0.0))


def _outcome(observed: Observation) -> Any:
    if observed.exception is not None:
        raise observed.exception
    return observed.value


def _json_like(value: Any) -> bool:
    return value is None or isinstance(value, (dict, list, str, int, float, bool))


def _fraction(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not 0.0 <= number <= 1.0:
        raise ConfigError(f"{what}={value!r} is not valid: accepted values are 0.0 to 1.0")
    return number


def _sample_from_environment(name: str) -> float | None:
    """The sample ``SHADOWGUARD_EXPERIMENTS`` sets for experiment ``name``, if any."""
    text = os.environ.get(ENV_EXPERIMENTS, "").strip()
    if not text or text.lower() == "on":
        return None
    if text.lower() == "off":
        return 0.0
    found: dict[str, float] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"{ENV_EXPERIMENTS}={text!r} is not valid: accepted values are 'on', 'off' or "
                "name=fraction pairs separated by commas ('checkout=0.1,search=0')"
            )
        found[key.strip()] = _fraction(value.strip(), f"{ENV_EXPERIMENTS} {key.strip()}")
    return found.get(name)
