"""Field paths in JSON values: where two values diverge, how a place is written, what is ignored.

Shared by ``shadowguard compare`` (response bodies) and :class:`shadowguard.Experiment`
(return values).

A path is a tuple of parts, a ``str`` for an object key and an ``int`` for a list index. It is
shown two ways: *collapsed*, the form differences are counted and ignore rules match under
(``items[].price``: every element of a list is ``[]``), and *concrete*, the form an example
shows (``items[2].price``). The body itself is ``$``; a key that is not a plain name (letters,
digits, ``_`` and ``-``) is quoted as ``["a key"]``, so no key can pass for a nested path or for
a header (``header:content-type``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = [
    "MISSING",
    "ROOT",
    "IgnoreRules",
    "Opaque",
    "collapsed",
    "concrete",
    "header_path",
    "same",
    "walk",
]

ROOT = "$"
_PLAIN = re.compile(r"[A-Za-z0-9_\-]+")


def _key(key: str, first: bool) -> str:
    if _PLAIN.fullmatch(key):
        return key if first else f".{key}"
    return f"[{json.dumps(key, ensure_ascii=False)}]"


def _render(parts: tuple[str | int, ...], indices: bool) -> str:
    if not parts:
        return ROOT
    out = []
    for i, part in enumerate(parts):
        if isinstance(part, int):
            out.append(f"[{part}]" if indices else "[]")
        else:
            out.append(_key(part, i == 0))
    return "".join(out)


def collapsed(parts: tuple[str | int, ...]) -> str:
    """The counted form: ``items[].price``."""
    return _render(parts, indices=False)


def concrete(parts: tuple[str | int, ...]) -> str:
    """The example form: ``items[2].price``."""
    return _render(parts, indices=True)


def header_path(name: str) -> str:
    """The path of a response header (names are lower-cased in records)."""
    return f"header:{name.lower()}"


def _glob(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append(r"[^.\[]*")
            i += 1
        elif pattern[i] == "?":
            out.append(r"[^.\[]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


class IgnoreRules:
    """``--ignore`` globs over collapsed paths.

    ``*`` matches within one key, ``**`` across keys, ``?`` one character; everything else,
    ``[]`` included, is literal. A rule matching a path also ignores everything under it
    (``meta`` ignores ``meta.generated_at``).
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        if self.patterns:
            alternatives = "|".join(f"(?:{_glob(p)})" for p in self.patterns)
            self._regex: re.Pattern[str] | None = re.compile(rf"(?:{alternatives})(?:$|(?=[.\[]))")
        else:
            self._regex = None
        self._seen: dict[str, bool] = {}

    def __call__(self, path: str) -> bool:
        """Is ``path`` (collapsed) ignored?"""
        if self._regex is None:
            return False
        hit = self._seen.get(path)
        if hit is None:
            hit = self._seen[path] = self._regex.match(path) is not None
        return hit


class Opaque(str):
    """A description shown in place of a value that is not JSON: ``<binary, 12 bytes>``."""

    __slots__ = ()


MISSING = Opaque("(missing)")
_FAST_DEPTH = 32


def same(x: Any, y: Any) -> bool:
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
            if not same(a, b):
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
                if not same(value_a, value_b):
                    yield child
            else:
                stack.append(child)
