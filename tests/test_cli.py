"""The console command: bad input is one line and exit 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import shadowguard
from tests._malformed import MALFORMED_SETTINGS


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SHADOW", "OTEL_"))}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "shadowguard", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
    )


def test_version() -> None:
    result = _run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"shadowguard {shadowguard.__version__}"


@pytest.mark.parametrize(("env", "named"), MALFORMED_SETTINGS)
def test_demo_with_a_malformed_setting_exits_2_with_one_clear_line(
    env: dict[str, str], named: str
) -> None:
    result = _run("demo", "-n", "2", env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    ours = [line for line in result.stderr.splitlines() if line.startswith("shadowguard demo:")]
    assert len(ours) == 1
    assert named in ours[0]
    assert "accepted values" in ours[0]


def test_a_bad_option_exits_2() -> None:
    result = _run("demo", "-n", "lots")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_doctor_json_into_a_closed_pipe_has_no_traceback() -> None:
    """``shadowguard doctor --json | head``: the reader is gone before doctor writes."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        doctor = subprocess.run(
            [sys.executable, "-m", "shadowguard", "doctor", "--json"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in doctor.stderr
    assert "BrokenPipeError" not in doctor.stderr
