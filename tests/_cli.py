"""Run ``python -m shadowguard`` as a user would, and read what it printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run_shadowguard(
    *args: str, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python -m shadowguard ARGS`` in ``cwd``, with only our settings (``env``) in the environment."""
    # Django test modules set DJANGO_SETTINGS_MODULE at collection: not the application's.
    skip = ("SHADOW", "OTEL_", "DJANGO_SETTINGS_MODULE")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    full_env["PYTHONDONTWRITEBYTECODE"] = "1"
    full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), full_env.get("PYTHONPATH", "")])
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "shadowguard", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=120,
    )


def json_report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON report a ``--json`` run printed."""
    try:
        data: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(result.stdout + result.stderr) from None
    return data


def one_line_error(result: subprocess.CompletedProcess[str], command: str) -> str:
    """Exit 2, no traceback, exactly one line of ``shadowguard COMMAND:`` on stderr; that line."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    prefix = f"shadowguard {command}:"
    ours = [line for line in result.stderr.splitlines() if line.startswith(prefix)]
    assert len(ours) == 1, result.stderr
    return ours[0]
