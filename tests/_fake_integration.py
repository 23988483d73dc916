"""A stand-in integration for testing install()/uninstall() bookkeeping."""

from __future__ import annotations

import json
from typing import Any

from shadowguard._patching import Patches

_patches = Patches("fake")
installed_with: dict[str, Any] = {}


def install(**options: Any) -> None:
    if _patches:
        return
    installed_with.clear()
    installed_with.update(options)
    _patches.setattr(json, "dumps", lambda *a, **k: "patched")


def uninstall() -> None:
    _patches.restore()
