"""shadowguard doctor, run as a user would: settings, integrations, unguarded libraries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _doctor(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SHADOW", "OTEL_"))}
    full_env.update(env)
    full_env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), full_env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "shadowguard", "doctor", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=full_env,
        timeout=120,
    )


def test_unguarded_library_fails_with_a_remedy(tmp_path: Path) -> None:
    (tmp_path / "leaky.py").write_text("import sqlalchemy\nimport requests\napp = object()\n")
    result = _doctor(tmp_path, "leaky:app")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "UNGUARDED" in result.stdout
    assert "sqlalchemy" in result.stdout
    assert "shadowguard.install('sqlalchemy')" in result.stdout
    assert "not ok" in result.stdout


def test_guarded_application_passes(tmp_path: Path) -> None:
    (tmp_path / "safe.py").write_text(
        "import shadowguard\nimport sqlalchemy\nshadowguard.install('sqlalchemy')\napp = object()\n"
    )
    result = _doctor(tmp_path, "safe:app", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["integrations"]["sqlalchemy"]["active"] is True
    assert "sqlalchemy" in report["guarded"]
    assert report["unguarded"] == []


def test_settings_are_printed_and_secret_hidden(tmp_path: Path) -> None:
    result = _doctor(tmp_path, "--json", SHADOW_MODE="on", SHADOWGUARD_MARKER_SECRET="hunter2")
    report = json.loads(result.stdout)
    assert report["settings"]["mode"] == "shadow"
    assert report["settings"]["marker_secret"] == "***"
    assert "hunter2" not in result.stdout


def test_configuration_error_fails(tmp_path: Path) -> None:
    result = _doctor(tmp_path, SHADOW_MODE="ture")
    assert result.returncode == 1
    assert "SHADOW_MODE='ture' is not valid" in result.stdout


def test_import_error_of_the_application_fails(tmp_path: Path) -> None:
    result = _doctor(tmp_path, "no_such_module:app")
    assert result.returncode == 1
    assert "could not import no_such_module:app" in result.stdout


def test_missing_attribute_fails(tmp_path: Path) -> None:
    (tmp_path / "empty.py").write_text("")
    result = _doctor(tmp_path, "empty:app")
    assert result.returncode == 1
    assert "AttributeError" in result.stdout
