"""Bad input is one line and exit 2: settings, application paths, failing imports and factories."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests._cli import json_report
from tests._malformed import MALFORMED_SETTINGS
from tests.doctor._run import ROOT, doctor, one_line_error, subjects, write

FASTAPI_GUARDED = """\
from fastapi import FastAPI
from shadowguard.middleware.asgi import ShadowGuardMiddleware

app = FastAPI()
app.add_middleware(ShadowGuardMiddleware)
"""


def test_without_an_application_only_settings_are_checked_and_it_says_so(tmp_path: Path) -> None:
    result = doctor(tmp_path, "--json", SHADOW_MODE="on", SHADOWGUARD_MARKER_SECRET="hunter2")
    data = json_report(result)
    assert result.returncode == 0
    assert data["settings"]["mode"] == "shadow"
    assert data["settings"]["marker_secret"] == "***"
    assert "hunter2" not in result.stdout
    assert "nothing else was checked" in data["verdict"]
    assert "ok:" not in data["verdict"]


@pytest.mark.parametrize(("env", "named"), MALFORMED_SETTINGS)
def test_a_malformed_setting_is_one_line_and_exit_2(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    write(tmp_path, "svc.py", FASTAPI_GUARDED)
    line = one_line_error(doctor(tmp_path, "svc:app", **env))
    assert named in line
    assert "accepted values" in line


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("no_such_module:app", "no module named 'no_such_module'"),
        ("svc:missing", "has no attribute 'missing'"),
        ("svc.py:app", "a module path, not a file"),
        ("src/svc:app", "a module path, not a file"),
        ("svc:app(1)", "accepted forms are"),
        ("svc:create_app()", "has no attribute 'create_app'"),
    ],
)
def test_a_bad_application_path_is_one_line_and_exit_2(
    tmp_path: Path, spec: str, expected: str
) -> None:
    write(tmp_path, "svc.py", FASTAPI_GUARDED)
    assert expected in one_line_error(doctor(tmp_path, spec))


@pytest.mark.parametrize(
    ("files", "spec", "expected"),
    [
        pytest.param(
            {"broken.py": "import json\n\nraise RuntimeError('no database URL')\n"},
            "broken:app",
            ["RuntimeError: no database URL", "broken.py:3"],
            id="import raises: names the line",
        ),
        pytest.param(
            {"svc.py": "import not_installed_anywhere\napp = None\n"},
            "svc:app",
            ["ModuleNotFoundError", "svc.py:1"],
            id="an import error inside the application is not a missing module",
        ),
        pytest.param(
            {
                "first.py": "from second import helper\napp = None\ndef thing(): pass\n",
                "second.py": "from first import thing\ndef helper(): pass\n",
            },
            "first:app",
            ["ImportError", "circular import"],
            id="a failing circular import",
        ),
    ],
)
def test_an_application_that_does_not_import_is_one_line(
    tmp_path: Path, files: dict[str, str], spec: str, expected: list[str]
) -> None:
    for name, source in files.items():
        write(tmp_path, name, source)
    line = one_line_error(doctor(tmp_path, spec))
    for text in expected:
        assert text in line


def test_a_working_circular_import_is_fine(tmp_path: Path) -> None:
    write(tmp_path, "svc/__init__.py", "")
    write(tmp_path, "svc/main.py", FASTAPI_GUARDED + "\nfrom svc import routes\n")
    write(tmp_path, "svc/routes.py", "import svc.main\n\ndef route(): return svc.main.app\n")
    result = doctor(tmp_path, "svc.main:app")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_factory_that_needs_arguments_is_one_line(tmp_path: Path) -> None:
    write(tmp_path, "svc.py", "def create_app(config):\n    raise AssertionError('called')\n")
    line = one_line_error(doctor(tmp_path, "svc:create_app"))
    assert "needs argument(s) config" in line
    line = one_line_error(doctor(tmp_path, "svc:create_app()"))
    assert "needs argument(s) config" in line


def test_a_factory_that_raises_or_returns_nothing_is_one_line(tmp_path: Path) -> None:
    write(tmp_path, "svc.py", "def create_app():\n    raise KeyError('DATABASE_URL')\n")
    line = one_line_error(doctor(tmp_path, "svc:create_app"))
    assert "the factory raised KeyError: 'DATABASE_URL'" in line
    assert "svc.py:2" in line
    write(tmp_path, "nothing.py", "def create_app():\n    pass\n")
    assert "returned None" in one_line_error(doctor(tmp_path, "nothing:create_app"))


def test_calling_something_that_is_not_callable_is_one_line(tmp_path: Path) -> None:
    write(tmp_path, "svc.py", "app = 42\n")
    assert "not callable" in one_line_error(doctor(tmp_path, "svc:app()"))


def test_an_application_printing_at_import_keeps_the_json_clean(tmp_path: Path) -> None:
    write(tmp_path, "svc.py", "print('starting up')\n" + FASTAPI_GUARDED)
    result = doctor(tmp_path, "svc:app", "--json")
    assert json_report(result)["ok"] is True
    assert "starting up" in result.stderr


def test_json_into_head_has_no_traceback(tmp_path: Path) -> None:
    write(tmp_path, "svc.py", FASTAPI_GUARDED)
    result = subprocess.run(
        f"{sys.executable} -m shadowguard doctor svc:app --json | head -1",
        shell=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=120,
    )
    assert result.stdout == "{\n"
    assert "Traceback" not in result.stderr
    assert "BrokenPipeError" not in result.stderr


def test_an_application_exiting_at_import_is_one_line(tmp_path: Path) -> None:
    write(tmp_path, "svc.py", "import sys\n\nsys.exit(3)\n")
    assert "SystemExit: 3 (at svc.py:3)" in one_line_error(doctor(tmp_path, "svc:app"))


def test_threads_the_application_leaves_running_do_not_hold_the_verdict(tmp_path: Path) -> None:
    write(
        tmp_path,
        "svc.py",
        "import threading\nimport time\n\n"
        "threading.Thread(target=time.sleep, args=(3600,)).start()\n" + FASTAPI_GUARDED,
    )
    result = doctor(tmp_path, "svc:app", "--json")  # the helper's timeout is 120 s
    assert json_report(result)["ok"] is True


def test_odd_application_objects_do_not_break_doctor(tmp_path: Path) -> None:
    write(
        tmp_path,
        "odd.py",
        """\
        from unittest.mock import MagicMock


        class Exploding:
            @property
            def app(self):
                raise RuntimeError("lazy app not ready")

            def __call__(self, scope, receive, send):
                pass


        class Holder:
            @property
            def service(self):
                raise RuntimeError("not configured")


        mock = MagicMock()
        exploding = Exploding()
        holder = Holder()
        """,
    )
    for name in ("mock", "exploding"):
        data = json_report(doctor(tmp_path, f"odd:{name}", "--json"))
        assert subjects(data) == ["middleware"]
    line = one_line_error(doctor(tmp_path, "odd:holder.service"))
    assert "reading 'service' raised RuntimeError: not configured" in line


def test_doctor_in_process_leaves_threads_it_did_not_start_alone(tmp_path: Path) -> None:
    """``main(["doctor"])`` inside a process with its own threads returns; it does not exit."""
    script = (
        "import threading, time\n"
        "from shadowguard._cli import main\n"
        "worker = threading.Thread(target=time.sleep, args=(1,))\n"
        "worker.start()\n"
        "status = main(['doctor'])\n"
        "print('returned', status)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert "returned 0" in result.stdout, result.stdout + result.stderr
