"""Options of ``shadowguard compare``: defaults, validation, and the config file.

Every option can be given on the command line or in a config file (``--config``: TOML, or
JSON on any Python; in ``pyproject.toml`` the table ``[tool.shadowguard.compare]``). Keys
are the option names with ``_`` or ``-``; the command line wins over the file, and
``ignore`` and ``header`` lists from both are joined. A malformed value is a
:class:`CompareError` naming the option and what it accepts.
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from shadowguard.compare._errors import CompareError
from shadowguard.compare._sources import DEFAULT_MAX_RECORD_BYTES

__all__ = ["FailOn", "Options", "build_options", "load_config"]


@dataclass(frozen=True)
class FailOn:
    """``--fail-on`` gates; None is no gate.

    Attributes:
        diff_rate: Fail when a route has more than this fraction of its pairs differing.
        p99_ratio: Fail when a route's candidate P99 is over this many times the baseline's.
        error_rate: Fail when a route's candidate error rate exceeds the baseline's by more.
        unpaired: Fail when more than this fraction of the records is unpaired.
    """

    diff_rate: float | None = None
    p99_ratio: float | None = None
    error_rate: float | None = None
    unpaired: float | None = None


@dataclass(frozen=True)
class Options:
    """Everything that shapes a comparison; the defaults are the documented ones.

    Attributes:
        baseline: Label of the baseline side (None: ``primary``).
        candidate: Label of the candidate (None: ``candidate`` when present, else ``shadow``).
        noise: Label of the noise side (None: ``secondary`` when present; ``"none"``: off).
        window: Seconds within which paired records must start; None pairs at any distance.
        ignore: Path globs left out of the diff.
        header: Header names to compare; empty compares every captured header but the
            usual per-response ones.
        noise_relative: A path is reported only if ``(c - n) / c`` exceeds this.
        noise_absolute: A path is reported only if ``c - n`` exceeds this.
        p99_ratio: A route is flagged when the candidate's P99 is over this many times the
            baseline's.
        min_count: Records each side needs on a route before it can be flagged.
        examples: Example requests kept per differing path.
        max_record_bytes: Stored records larger than this are skipped and counted.
        fail_on: The ``--fail-on`` gates.
    """

    baseline: str | None = None
    candidate: str | None = None
    noise: str | None = None
    window: float | None = 60.0
    ignore: tuple[str, ...] = ()
    header: tuple[str, ...] = ()
    noise_relative: float = 0.2
    noise_absolute: float = 0.001
    p99_ratio: float = 1.5
    min_count: int = 20
    examples: int = 3
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    fail_on: FailOn = field(default_factory=FailOn)


def _number(text: object) -> float:
    if isinstance(text, bool):
        raise ValueError
    value = float(text) if isinstance(text, (int, float, str)) else math.nan
    if not math.isfinite(value):
        raise ValueError
    return value


def _fraction(text: object) -> float:
    value = _number(text)
    if not 0 <= value <= 1:
        raise ValueError
    return value


def _ratio(text: object) -> float:
    value = _number(text)
    if value <= 0:
        raise ValueError
    return value


def _count(text: object) -> int:
    if isinstance(text, bool) or not isinstance(text, (int, str)):
        raise ValueError
    value = int(text)
    if value < 1:
        raise ValueError
    return value


def _window(text: object) -> float | None:
    if isinstance(text, str) and text.strip().lower() in ("off", "none"):
        return None
    value = _number(text)
    if value < 0:
        raise ValueError
    return value


def _label(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValueError
    return text.strip()


def _names(value: object) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) and i for i in items):
        raise ValueError
    return tuple(items)


_Parser = tuple[Callable[[object], Any], str]
_LABEL: _Parser = (_label, "a label")
_FRACTION: _Parser = (_fraction, "a fraction from 0 to 1")
_RATIO: _Parser = (_ratio, "a ratio > 0")
_COUNT: _Parser = (_count, "a whole number >= 1")
_SCALARS: dict[str, _Parser] = {
    "baseline": _LABEL,
    "candidate": _LABEL,
    "noise": (_label, "a label, or none"),
    "window": (_window, "seconds (>= 0) or off"),
    "noise_relative": _FRACTION,
    "noise_absolute": _FRACTION,
    "p99_ratio": _RATIO,
    "min_count": _COUNT,
    "examples": _COUNT,
    "max_record_bytes": (_count, "a whole number of bytes >= 1"),
}
_LISTS = ("ignore", "header")
_GATES: dict[str, _Parser] = {
    "diff_rate": _FRACTION,
    "p99_ratio": _RATIO,
    "error_rate": _FRACTION,
    "unpaired": _FRACTION,
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _parse(parser: Callable[[object], Any], accepted: str, value: object, where: str) -> Any:
    try:
        return parser(value)
    except (ValueError, TypeError, OverflowError):
        raise CompareError(f"{where}: {value!r} is not {accepted}") from None


def _fail_on(entries: Mapping[str, object], where: Callable[[str], str]) -> dict[str, float]:
    gates: dict[str, float] = {}
    for raw, value in entries.items():
        name = raw.strip().replace("-", "_")
        if name not in _GATES:
            accepted = ", ".join(n.replace("_", "-") for n in _GATES)
            raise CompareError(f"{where(raw)}: unknown gate {raw!r}; accepted: {accepted}")
        parser, accepted = _GATES[name]
        gates[name] = _parse(parser, accepted, value, where(raw))
    return gates


def parse_fail_on(texts: list[str]) -> dict[str, float]:
    """``["diff-rate=0.01", ...]`` from the command line."""
    entries: dict[str, object] = {}
    for text in texts:
        name, sep, value = text.partition("=")
        if not sep:
            raise CompareError(
                f"--fail-on: {text!r} is not NAME=VALUE (for example diff-rate=0.01)"
            )
        entries[name] = value.strip()
    return _fail_on(entries, lambda _name: "--fail-on")


def load_config(path: str) -> dict[str, Any]:
    """Read a TOML or JSON config file into validated option values."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CompareError(f"--config: cannot read {path}: {exc}") from None
    data: Any
    if file.suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CompareError(f"--config: {path} is not valid JSON: {exc}") from None
    else:
        try:
            toml = importlib.import_module("tomllib")
        except ImportError:  # Python 3.10
            raise CompareError(
                f"--config: reading TOML ({path}) needs Python 3.11 or later; use a .json file"
            ) from None
        try:
            data = toml.loads(text)
        except ValueError as exc:  # tomllib.TOMLDecodeError
            raise CompareError(f"--config: {path} is not valid TOML: {exc}") from None
        table = data.get("tool", {}).get("shadowguard", {}).get("compare")
        if table is None and file.name == "pyproject.toml":
            raise CompareError(f"--config: {path} has no [tool.shadowguard.compare] table")
        data = data if table is None else table
    if not isinstance(data, dict):
        raise CompareError(f"--config: {path} does not hold a table of options")
    return _validate(data, lambda key: f"--config {path}: {key}")


def _under(where: Callable[[str], str], table: str) -> Callable[[str], str]:
    return lambda key: where(f"{table}.{key}")


def _validate(data: Mapping[str, Any], where: Callable[[str], str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for raw, value in data.items():
        name = raw.replace("-", "_")
        if name in _SCALARS:
            parser, accepted = _SCALARS[name]
            values[name] = _parse(parser, accepted, value, where(raw))
        elif name in _LISTS:
            values[name] = _parse(_names, "a list of strings", value, where(raw))
        elif name == "fail_on":
            if not isinstance(value, dict):
                raise CompareError(f"{where(raw)}: {value!r} is not a table of gates")
            values[name] = _fail_on(value, _under(where, raw))
        else:
            accepted = ", ".join(sorted([*_SCALARS, *_LISTS, "fail_on"]))
            raise CompareError(f"{where(raw)}: unknown option; accepted: {accepted}")
    return values


def build_options(cli: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> Options:
    """Options from command-line values (None: not given) over config-file values."""
    merged: dict[str, Any] = dict(config or {})
    given = {k: v for k, v in cli.items() if v is not None and k not in (*_LISTS, "fail_on")}
    merged.update(_validate(given, _flag))
    for name in _LISTS:
        merged[name] = tuple(merged.get(name, ())) + tuple(cli.get(name) or ())
    gates = dict(merged.pop("fail_on", {}))
    gates.update(parse_fail_on(list(cli.get("fail_on") or [])))
    known = {f.name for f in fields(Options)}
    return Options(**{k: v for k, v in merged.items() if k in known}, fail_on=FailOn(**gates))
