"""Primary-path cost of the core: is_shadow() and a @side_effect function."""

from __future__ import annotations

import contextlib

from benchmarks._harness import Harness
from shadowguard import is_shadow, shadow, side_effect


def plain(x: int) -> int:
    return x + 1


guarded = side_effect(plain)


async def aplain(x: int) -> int:
    return x + 1


aguarded = side_effect(aplain)


def run(h: Harness) -> None:
    h.compare("is_shadow() vs an empty function call", lambda: plain(1), is_shadow)
    h.compare(
        "@side_effect sync function, primary",
        lambda: plain(1),
        lambda: guarded(1),
        target_added_ns=120,
    )

    def drive(fn):
        coro = fn(1)
        with contextlib.suppress(StopIteration):
            coro.send(None)

    h.compare(
        "@side_effect async function, primary", lambda: drive(aplain), lambda: drive(aguarded)
    )
    scope = shadow()
    with scope:
        h.compare(
            "@side_effect sync function, shadow (suppressed)", lambda: plain(1), lambda: guarded(1)
        )
