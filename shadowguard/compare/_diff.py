"""The differ: where a candidate's response differs from the baseline's, one pair at a time.

Status codes are compared apart (a pair's status differs or not). Headers are compared by
name, each as the path ``header:<name>``. JSON bodies are walked side by side and a difference
is reported at the highest place the two diverge: a leaf whose value or JSON type differs
(``1``, ``1.0`` and ``true`` all differ), a key or list element present on one side only, a
value that is an object on one side and something else on the other. Other bodies are
compared whole, at ``$``: text by its content, binary ones by their size; a body larger than
the capture bound (``truncated``) on both sides is not compared.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from shadowguard.capture_format import CaptureRecord
from shadowguard.compare._paths import ROOT, IgnoreRules, collapsed, concrete, header_path

__all__ = [
    "DEFAULT_IGNORED_HEADERS",
    "MISSING",
    "Differ",
    "Difference",
    "Opaque",
    "PairDiff",
    "preview",
    "walk",
]

#: Headers left out unless named with ``--header``: they differ on every response, or follow
#: from a body difference that is reported anyway.
DEFAULT_IGNORED_HEADERS = frozenset(
    {"date", "content-length", "x-request-id", "x-envoy-upstream-service-time"}
)


class Opaque(str):
    """A description shown in place of a value that is not JSON: ``<binary, 12 bytes>``."""

    __slots__ = ()


MISSING = Opaque("(missing)")
_FAST_DEPTH = 32


@dataclass(frozen=True)
class Difference:
    """One place where the two responses differ: collapsed path, concrete path, both values."""

    path: str
    at: str
    baseline: Any
    candidate: Any


@dataclass(frozen=True)
class PairDiff:
    """The differences of one pair."""

    status: bool
    differences: list[Difference]
    body_compared: bool


def preview(value: Any, limit: int = 400) -> str:
    """A value as shown in an example: JSON text, cut at ``limit`` characters."""
    if isinstance(value, Opaque):
        text = str(value)
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, sort_keys=True, allow_nan=True)
        except (TypeError, ValueError, RecursionError):
            text = repr(value)
    if len(text) > limit:
        return f"{text[:limit]}… ({len(text)} characters)"
    return text


def _same(x: Any, y: Any) -> bool:
    if x == y:
        return True
    # NaN (Python's json reads it) is equal to itself here: equal documents never differ.
    return isinstance(x, float) and x != x and y != y


def _equal(a: Any, b: Any) -> bool:
    """Type-strict equality of two containers at C speed; False also when unsure."""
    try:
        # ``==`` says 1 == 1.0 == True; their JSON texts tell them apart.
        return bool(a == b) and json.dumps(a) == json.dumps(b)
    except (TypeError, ValueError, RecursionError):
        return False


def walk(x: Any, y: Any) -> Iterator[tuple[tuple[str | int, ...], Any, Any]]:
    """Yield ``(parts, baseline, candidate)`` wherever two JSON values diverge.

    Iterative, not recursive: a body nested deeper than the interpreter's recursion limit
    is still compared. Equal containers near the top are skipped whole (most of a body
    is equal); deeper down each one is walked, as a whole-subtree check per level would
    cost the square of the depth.
    """
    stack: list[tuple[tuple[str | int, ...], Any, Any]] = [((), x, y)]
    while stack:
        parts, a, b = stack.pop()
        kind = type(a)
        if kind is not type(b):
            yield parts, a, b
            continue
        if kind is not dict and kind is not list:
            if not _same(a, b):
                yield parts, a, b
            continue
        if len(parts) < _FAST_DEPTH and _equal(a, b):
            continue
        children: list[tuple[tuple[str | int, ...], Any, Any]] = []
        if kind is dict:
            for key, value in a.items():
                if key in b:
                    children.append(((*parts, key), value, b[key]))
                else:
                    yield (*parts, key), value, MISSING
            for key, value in b.items():
                if key not in a:
                    yield (*parts, key), MISSING, value
        else:
            common = min(len(a), len(b))
            children = [((*parts, i), a[i], b[i]) for i in range(common)]
            for i in range(common, len(a)):
                yield (*parts, i), a[i], MISSING
            for i in range(common, len(b)):
                yield (*parts, i), MISSING, b[i]
        for child in reversed(children):
            value_a, value_b = child[1], child[2]
            leaf = type(value_a)
            if leaf is type(value_b) and leaf is not dict and leaf is not list:
                if not _same(value_a, value_b):
                    yield child
            else:
                stack.append(child)


def _body(record: CaptureRecord) -> Any:
    kind = record["body_kind"]
    if kind in ("json", "text"):
        return record["body"]
    if kind == "empty":
        return Opaque("<empty>")
    return Opaque(f"<{kind}, {record['body_bytes']} bytes>")


class Differ:
    """Compare pairs of records under ignore rules and a header selection.

    ``headers``: the header names to compare; None compares every captured header except
    :data:`DEFAULT_IGNORED_HEADERS`.
    """

    def __init__(self, ignore: IgnoreRules, headers: frozenset[str] | None = None) -> None:
        self.ignore = ignore
        self.headers = None if headers is None else frozenset(h.lower() for h in headers)

    def __call__(self, baseline: CaptureRecord, candidate: CaptureRecord) -> PairDiff:
        found: list[Difference] = []
        self._headers(baseline["headers"], candidate["headers"], found)
        compared = self._bodies(baseline, candidate, found)
        return PairDiff(baseline["status"] != candidate["status"], found, compared)

    def _headers(self, a: dict[str, str], b: dict[str, str], found: list[Difference]) -> None:
        names: AbstractSet[str] = self.headers or set()
        if self.headers is None:
            names = (a.keys() | b.keys()) - DEFAULT_IGNORED_HEADERS
        for name in sorted(names):
            x, y = a.get(name, MISSING), b.get(name, MISSING)
            if x != y or type(x) is not type(y):
                path = header_path(name)
                if not self.ignore(path):
                    found.append(Difference(path, path, x, y))

    def _bodies(self, a: CaptureRecord, b: CaptureRecord, found: list[Difference]) -> bool:
        kinds = a["body_kind"], b["body_kind"]
        if kinds == ("truncated", "truncated"):
            return False
        if kinds == ("json", "json"):
            for parts, x, y in walk(a["body"], b["body"]):
                path = collapsed(parts)
                if not self.ignore(path):
                    found.append(Difference(path, concrete(parts), x, y))
            return True
        x, y = _body(a), _body(b)
        same = kinds[0] == kinds[1] and (
            a["body_bytes"] == b["body_bytes"] if kinds[0] == "binary" else _same(x, y)
        )
        if not same and not self.ignore(ROOT):
            found.append(Difference(ROOT, ROOT, x, y))
        return True
