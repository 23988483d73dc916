"""doctor and Celery: an app made at import is guarded once the celery integration is installed."""

from __future__ import annotations

from pathlib import Path

from tests._cli import json_report
from tests.doctor._run import doctor, subjects, write

APP = """\
from celery import Celery
from shadowguard.middleware.wsgi import ShadowGuardMiddleware
import shadowguard

tasks = Celery("svc", broker="memory://")  # connects on its first send
{install}

def inner(environ, start_response):
    tasks.send_task("orders.place", [1])

app = ShadowGuardMiddleware(inner)
"""


def test_a_celery_app_without_its_integration_is_unguarded(tmp_path: Path) -> None:
    write(tmp_path, "svc.py", APP.format(install=""))
    result = doctor(tmp_path, "svc:app", "--json")
    data = json_report(result)
    assert result.returncode == 1
    assert {"celery", "Celery app"} <= set(subjects(data))
    found = next(f for f in data["unguarded"] if f["subject"] == "Celery app")
    assert "svc.tasks" in found["problem"]
    assert "shadowguard.install('celery')" in found["remedy"]


def test_a_celery_app_created_before_install_is_guarded(tmp_path: Path) -> None:
    write(tmp_path, "svc.py", APP.format(install="shadowguard.install('celery')"))
    result = doctor(tmp_path, "svc:app", "--json")
    data = json_report(result)
    assert result.returncode == 0, data["unguarded"]
    assert data["guarded"]["celery"] == "by the celery integration"
    assert ("svc.tasks", True) in [(c["name"], c["guarded"]) for c in data["live_clients"]]
