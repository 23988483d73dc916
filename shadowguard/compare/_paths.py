"""Field paths: how a place in a JSON body is written, and the ``--ignore`` globs that match it.

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
from collections.abc import Iterable

__all__ = ["ROOT", "IgnoreRules", "collapsed", "concrete", "header_path"]

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
