"""Side-effect libraries in the process that the application's own code does not import.

Some are transports of a guarded client (confluent-kafka's Schema Registry client loads
authlib, which loads httpx2) and need no word; others are how a dependency (an SDK) leaves
the process, which doctor cannot see. Which packages hold which (a module global that is
another package's module or class) tells the two apart: a package held only by covered
packages (shadowguard, guarded libraries, those the application imports and doctor reports)
is covered too.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Collection
from types import ModuleType

__all__ = ["Holders"]


def _owner(value: object) -> str | None:
    # type(), never isinstance(): a lazy object (Django's settings) evaluates on __class__.
    kind = type(value)
    name: object = None
    if issubclass(kind, ModuleType):
        name = vars(value).get("__name__")
    elif issubclass(kind, type):
        name = vars(value).get("__module__")
    return name if isinstance(name, str) else None


class Holders:
    """For each top-level package, the other top-level packages holding one of its parts."""

    def __init__(self) -> None:
        self.held_by: dict[str, set[str]] = defaultdict(set)
        for name, module in list(sys.modules.items()):
            if not issubclass(type(module), ModuleType):
                continue
            holder = name.partition(".")[0]
            for value in list(vars(module).values()):
                owner = _owner(value)
                if owner is not None:
                    package = owner.partition(".")[0]
                    if package != holder:
                        self.held_by[package].add(holder)

    def uncovered(self, library: str, covered: Collection[str]) -> list[str]:
        """The packages holding ``library`` that are not covered, directly or through others."""
        closed = set(covered)
        changed = True
        while changed:
            changed = False
            for package, holders in self.held_by.items():
                if package not in closed and holders and holders <= closed:
                    closed.add(package)
                    changed = True
        return sorted(self.held_by.get(library.partition(".")[0], set()) - closed)
