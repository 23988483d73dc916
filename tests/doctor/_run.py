"""Run ``python -m shadowguard doctor`` as a user would, on small applications in a folder."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path
from typing import Any

from tests import _cli
from tests._cli import run_shadowguard

ROOT = Path(__file__).resolve().parents[2]


def write(folder: Path, name: str, source: str) -> Path:
    """Write ``folder/name`` (dedented), creating packages on the way."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def doctor(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m shadowguard doctor ARGS`` in ``cwd``, with only our settings in the environment."""
    return run_shadowguard("doctor", *args, cwd=cwd, **env)


def subjects(data: dict[str, Any], section: str = "unguarded") -> list[str]:
    """The subjects of the findings in ``section``."""
    return [item["subject"] for item in data[section]]


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """Exit 2, no traceback, one line of ours on stderr and nothing on stdout; that line."""
    line = _cli.one_line_error(result, "doctor")
    assert result.stdout == ""
    return line
