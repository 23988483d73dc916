"""doctor on every shipped example application: no false alarm, and nothing left unseen unsaid."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._cli import json_report
from tests.doctor._run import ROOT, doctor, subjects, write

EXAMPLES = ROOT / "examples"


@pytest.mark.parametrize("spec", ["app:create_app", "app:create_app()"])
def test_flask_example_factory(tmp_path: Path, spec: str) -> None:
    result = doctor(
        EXAMPLES / "flask_orders", spec, "--json", ORDERS_DATABASE_URL=f"sqlite:///{tmp_path}/o.db"
    )
    data = json_report(result)
    assert result.returncode == 0, data["unguarded"]
    assert data["factory"] is True
    assert data["middleware"] == "shadowguard.middleware.wsgi.ShadowGuardMiddleware"
    assert data["guarded"] == {
        "urllib.request": "by the http_client integration",
        "sqlalchemy": "by the sqlalchemy integration",
    }
    assert [c["kind"] for c in data["live_clients"]] == ["SQLAlchemy Engine"]
    assert data["cannot_see"] == []


def test_fastapi_example(tmp_path: Path) -> None:
    result = doctor(
        EXAMPLES / "fastapi_orders",
        "app:app",
        "--json",
        ORDERS_DATABASE_URL=f"sqlite:///{tmp_path}/o.db",
    )
    data = json_report(result)
    assert result.returncode == 0, data["unguarded"]
    assert (
        data["middleware"] == "user_middleware: shadowguard.middleware.asgi.ShadowGuardMiddleware"
    )
    assert set(data["guarded"]) == {"sqlalchemy", "confluent_kafka", "httpx"}
    assert data["cannot_see"] == []
    # install() with no names installed Django's guard too; the application does not use it.
    assert data["integrations"]["django"] == {
        "library": "django",
        "importable": True,
        "installed": True,
        "used_by_app": False,
        "extra": "django",
    }
    assert "ok: everything doctor can see is guarded" in data["verdict"]


@pytest.mark.parametrize("entry", ["wsgi", "asgi"])
def test_django_example(tmp_path: Path, entry: str) -> None:
    result = doctor(
        EXAMPLES / "django_orders",
        f"orders_service.{entry}:application",
        "--json",
        ORDERS_SQLITE_PATH=str(tmp_path / "orders.sqlite3"),
    )
    data = json_report(result)
    assert result.returncode == 0, data["unguarded"]
    assert data["middleware"] == (
        "settings.MIDDLEWARE: shadowguard.middleware.django.ShadowGuardMiddleware"
    )
    # views.py is imported through ROOT_URLCONF, as at the first request.
    assert data["guarded"] == {
        "django.db": "by the django integration",
        "urllib.request": "by the http_client integration",
    }
    assert data["cannot_see"] == []
    assert data["integrations"]["sqlalchemy"]["used_by_app"] is False


def test_django_example_without_its_middleware(tmp_path: Path) -> None:
    write(
        tmp_path,
        "bare_settings.py",
        """\
        from orders_service.settings import *  # noqa: F403
        MIDDLEWARE = ['django.middleware.common.CommonMiddleware']
        """,
    )
    result = doctor(
        EXAMPLES / "django_orders",
        "orders_service.wsgi:application",
        "--json",
        ORDERS_SQLITE_PATH=str(tmp_path / "orders.sqlite3"),
        DJANGO_SETTINGS_MODULE="bare_settings",
        PYTHONPATH=f"{ROOT}:{tmp_path}",
    )
    data = json_report(result)
    assert result.returncode == 1
    assert subjects(data) == ["middleware"]
    assert "first in MIDDLEWARE" in data["unguarded"][0]["remedy"]
