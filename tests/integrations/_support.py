"""Helpers the integration tests share."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any


@contextlib.contextmanager
def installing(sink: ModuleType, **options: Any) -> Iterator[ModuleType]:
    """``sink`` installed with ``options`` for the block, uninstalled after it."""
    sink.install(**options)
    try:
        yield sink
    finally:
        sink.uninstall()
