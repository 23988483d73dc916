"""Redaction of sensitive JSON fields before a record leaves the process.

A field matches a rule when its name, normalized (lower-cased, without ``_ - .`` and
spaces), equals the rule, or ends with it and the rule has at least
:data:`SUFFIX_MIN` characters: ``token`` covers ``access_token`` and ``csrfToken``, while
``pan`` covers ``pan`` only, not ``span`` or ``japan``. The whole value of a matching
field is replaced, whatever it is (a string, a number, an object).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shadowguard.capture._settings import normalize_field

__all__ = ["REDACTED", "SUFFIX_MIN", "Redactor"]

#: What a redacted value becomes.
REDACTED = "[redacted]"
#: Rules at least this long also match as a suffix of a field name.
SUFFIX_MIN = 5


class Redactor:
    """Replace the values of sensitive fields in decoded JSON (and header values)."""

    __slots__ = ("_exact", "_memo", "_suffixes")

    def __init__(self, rules: Iterable[str]) -> None:
        self._exact = frozenset(rules)
        self._suffixes = tuple(sorted(r for r in self._exact if len(r) >= SUFFIX_MIN))
        # Field names repeat across records: each is judged once (bounded).
        self._memo: dict[str, bool] = {}

    def matches(self, name: str) -> bool:
        """Is the field (or header) ``name`` sensitive?"""
        found = self._memo.get(name)
        if found is None:
            key = normalize_field(name)
            found = key in self._exact or key.endswith(self._suffixes)
            if len(self._memo) < 10_000:
                self._memo[name] = found
        return found

    def json(self, value: Any) -> Any:
        """``value`` with every matching field's value replaced by :data:`REDACTED`.

        Walks the document with an explicit stack (no recursion limit on deep documents)
        and changes it in place: it is the record's own copy, decoded from the body.
        """
        if not self._exact:
            return value
        stack = [value]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                for key, item in node.items():
                    if self.matches(key):
                        node[key] = REDACTED
                    elif isinstance(item, (dict, list)):
                        stack.append(item)
            elif isinstance(node, list):
                stack.extend(item for item in node if isinstance(item, (dict, list)))
        return value
