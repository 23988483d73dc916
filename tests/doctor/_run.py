"""Run ``python -m shadowguard doctor`` as a user would, on small applications in a folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def write(folder: Path, name: str, source: str) -> Path:
    """Write ``folder/name`` (dedented), creating packages on the way."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def doctor(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m shadowguard doctor ARGS`` in ``cwd``, with only our settings in the environment."""
    # Django test modules set DJANGO_SETTINGS_MODULE at collection: not the application's.
    skip = ("SHADOW", "OTEL_", "DJANGO_SETTINGS_MODULE")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    full_env["PYTHONDONTWRITEBYTECODE"] = "1"
    full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), full_env.get("PYTHONPATH", "")])
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "shadowguard", "doctor", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=120,
    )


def report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON report of a ``--json`` run."""
    try:
        data: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(result.stdout + result.stderr) from None
    return data


def subjects(data: dict[str, Any], section: str = "unguarded") -> list[str]:
    """The subjects of the findings in ``section``."""
    return [item["subject"] for item in data[section]]


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """Exit 2, no traceback, exactly one line of ours on stderr; that line."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    ours = [line for line in result.stderr.splitlines() if line.startswith("shadowguard doctor:")]
    assert len(ours) == 1, result.stderr
    assert result.stdout == ""
    return ours[0]
