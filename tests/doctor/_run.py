"""Run ``python -m shadowguard doctor`` as a user would, on small applications in a folder."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path
from typing import Any

from tests import _cli
from tests._cli import json_report, run_shadowguard

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


def doctor_app(folder: Path, app: str, install: str = "") -> tuple[int, dict[str, Any]]:
    """Write ``app`` as ``svc.py``, its ``{install}`` line filled with ``install``, and doctor
    ``svc:app --json``: the exit code and the report."""
    write(folder, "svc.py", app.format(install=install))
    result = doctor(folder, "svc:app", "--json")
    return result.returncode, json_report(result)


def finding(data: dict[str, Any], subject: str) -> dict[str, Any]:
    """The unguarded finding on ``subject``."""
    return next(item for item in data["unguarded"] if item["subject"] == subject)


def check_unguarded(folder: Path, app: str, library: str, kind: str, name: str) -> None:
    """Without its integration, ``app`` (its client ``name`` made at import) exits 1 with
    findings on ``library`` and ``kind`` alone; the latter names the client and the remedy."""
    code, data = doctor_app(folder, app)
    assert code == 1
    assert sorted(subjects(data)) == sorted([library, kind])
    client = finding(data, kind)
    assert name in client["problem"]
    assert f"shadowguard.install({library!r})" in client["remedy"]


def check_guarded(folder: Path, app: str, library: str, name: str) -> None:
    """With ``shadowguard.install(library)`` on its ``{install}`` line, ``app`` exits 0, guarded
    by that integration alone, and ``name`` is its one live client, guarded."""
    code, data = doctor_app(folder, app, f"shadowguard.install({library!r})")
    assert code == 0, data["unguarded"]
    assert data["guarded"] == {library: f"by the {library} integration"}
    assert [(c["name"], c["guarded"]) for c in data["live_clients"]] == [(name, True)]
