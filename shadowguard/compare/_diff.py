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
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from shadowguard._fieldpaths import (
    MISSING,
    ROOT,
    IgnoreRules,
    Opaque,
    collapsed,
    concrete,
    header_path,
    same,
    walk,
)
from shadowguard.capture_format import CaptureRecord

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
        equal = kinds[0] == kinds[1] and (
            a["body_bytes"] == b["body_bytes"] if kinds[0] == "binary" else same(x, y)
        )
        if not equal and not self.ignore(ROOT):
            found.append(Difference(ROOT, ROOT, x, y))
        return True
