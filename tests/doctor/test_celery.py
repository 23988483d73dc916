"""doctor and Celery: an app made at import is guarded once the celery integration is installed."""

from __future__ import annotations

from pathlib import Path

from tests.doctor._run import doctor_app, finding, subjects

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
    code, data = doctor_app(tmp_path, APP)
    assert code == 1
    assert {"celery", "Celery app"} <= set(subjects(data))
    found = finding(data, "Celery app")
    assert "svc.tasks" in found["problem"]
    assert "shadowguard.install('celery')" in found["remedy"]


def test_a_celery_app_created_before_install_is_guarded(tmp_path: Path) -> None:
    code, data = doctor_app(tmp_path, APP, "shadowguard.install('celery')")
    assert code == 0, data["unguarded"]
    assert data["guarded"]["celery"] == "by the celery integration"
    assert ("svc.tasks", True) in [(c["name"], c["guarded"]) for c in data["live_clients"]]
