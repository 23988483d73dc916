"""doctor on real small applications: live clients, middleware, the application's own imports."""

from __future__ import annotations

import os
from pathlib import Path

from tests._cli import json_report
from tests.doctor._run import ROOT, doctor, subjects, write
from tests.peers.kafka import KafkaBroker

PRODUCER_APP = """\
import confluent_kafka
from fastapi import FastAPI

import shadowguard
from shadowguard.middleware.asgi import ShadowGuardMiddleware

import os

CONFIG = {{"bootstrap.servers": os.environ["ORDERS_KAFKA"]}}
{before}
shadowguard.install("confluent_kafka")
{after}
app = FastAPI()
app.add_middleware(ShadowGuardMiddleware)


@app.post("/orders")
def create_order() -> dict[str, str]:
    producer.produce("orders", b"created")
    return {{"status": "ok"}}
"""


def _producer_app(tmp_path: Path, before: str = "", after: str = "") -> None:
    write(tmp_path, "orders.py", PRODUCER_APP.format(before=before, after=after))


def test_a_producer_created_at_import_before_install_is_unguarded(
    tmp_path: Path, kafka_broker: KafkaBroker
) -> None:
    _producer_app(tmp_path, before="producer = confluent_kafka.Producer(CONFIG)")
    result = doctor(tmp_path, "orders:app", "--json", ORDERS_KAFKA=kafka_broker.bootstrap)
    data = json_report(result)
    assert result.returncode == 1
    assert subjects(data) == ["confluent_kafka Producer"]
    finding = data["unguarded"][0]
    assert "orders.producer" in finding["problem"]
    assert "confluent_kafka.guard(producer" in finding["remedy"]
    assert data["guarded"] == {"confluent_kafka": "by the confluent_kafka integration"}
    text = doctor(tmp_path, "orders:app", ORDERS_KAFKA=kafka_broker.bootstrap).stdout
    assert "confluent_kafka Producer orders.producer: UNGUARDED" in text
    assert text.rstrip().endswith("not ok: 1 unguarded (see UNGUARDED above)")


def test_a_producer_given_to_guard_or_created_after_install_is_guarded(
    tmp_path: Path, kafka_broker: KafkaBroker
) -> None:
    _producer_app(
        tmp_path,
        before="early = confluent_kafka.Producer(CONFIG)",
        after=(
            "from shadowguard.integrations.confluent_kafka import guard\n"
            "early = guard(early, config=CONFIG)\n"
            "producer = confluent_kafka.Producer(CONFIG)\n"
        ),
    )
    result = doctor(tmp_path, "orders:app", "--json", ORDERS_KAFKA=kafka_broker.bootstrap)
    data = json_report(result)
    assert result.returncode == 0, data["unguarded"]
    clients = {c["name"]: c["guarded"] for c in data["live_clients"]}
    assert clients == {"orders.producer": True, "orders.early": True}


def test_an_application_without_middleware_is_unguarded(tmp_path: Path) -> None:
    write(
        tmp_path,
        "svc.py",
        """\
        from fastapi import FastAPI
        import shadowguard

        shadowguard.install("httpx")
        app = FastAPI()
        """,
    )
    result = doctor(tmp_path, "svc:app", "--json")
    data = json_report(result)
    assert result.returncode == 1
    assert subjects(data) == ["middleware"]
    assert "fastapi.applications.FastAPI" in data["unguarded"][0]["problem"]
    assert "app.add_middleware(ShadowGuardMiddleware)" in data["unguarded"][0]["remedy"]
    # The whole process is shadow: no middleware is needed to tell.
    data = json_report(doctor(tmp_path, "svc:app", "--json", SHADOW_MODE="true"))
    assert data["ok"] is True
    assert "not needed" in data["middleware"]


def test_flask_without_and_with_its_extension(tmp_path: Path) -> None:
    flask_app = """\
        from flask import Flask
        from shadowguard.middleware.flask import ShadowGuard

        def create_app():
            app = Flask(__name__)
            {extension}
            return app
        """
    write(tmp_path, "bare.py", flask_app.format(extension="pass"))
    write(tmp_path, "wrapped.py", flask_app.format(extension="ShadowGuard(app)"))
    bare = json_report(doctor(tmp_path, "bare:create_app", "--json"))
    assert subjects(bare) == ["middleware"]
    assert "ShadowGuard(app)" in bare["unguarded"][0]["remedy"]
    wrapped = json_report(doctor(tmp_path, "wrapped:create_app()", "--json"))
    assert wrapped["ok"] is True
    assert wrapped["factory"] is True
    assert wrapped["middleware"] == "shadowguard.middleware.wsgi.ShadowGuardMiddleware"


def test_plain_wsgi_and_asgi_functions(tmp_path: Path) -> None:
    write(
        tmp_path,
        "plain.py",
        """\
        from shadowguard.middleware import asgi, wsgi

        def wsgi_app(environ, start_response):
            start_response("200 OK", [])
            return [b"ok"]

        async def asgi_app(scope, receive, send):
            pass

        guarded_wsgi = wsgi.ShadowGuardMiddleware(wsgi_app)
        guarded_asgi = asgi.ShadowGuardMiddleware(asgi_app)
        """,
    )
    for name in ("wsgi_app", "asgi_app"):
        result = doctor(tmp_path, f"plain:{name}", "--json")
        data = json_report(result)
        assert result.returncode == 1
        assert f"function plain.{name}" in data["unguarded"][0]["problem"]
        assert data["factory"] is False  # a WSGI/ASGI function is not called as a factory
    for name in ("guarded_wsgi", "guarded_asgi"):
        assert doctor(tmp_path, f"plain:{name}").returncode == 0


def test_raw_channels_outside_side_effect_are_unguarded(tmp_path: Path) -> None:
    write(
        tmp_path,
        "svc/__init__.py",
        """\
        from flask import Flask
        from shadowguard.middleware.flask import ShadowGuard

        from svc import jobs

        app = Flask(__name__)
        ShadowGuard(app)
        """,
    )
    write(
        tmp_path,
        "svc/jobs.py",
        """\
        import sqlite3
        import urllib.parse
        import urllib.request
        from http import client

        from shadowguard import side_effect


        def notify(url: str) -> None:
            urllib.request.urlopen(url + urllib.parse.quote("x"))


        @side_effect
        def audit(path: str) -> None:
            with sqlite3.connect(path) as db:
                db.execute("insert into audit values (1)")


        def ping(host: str) -> None:
            client.HTTPConnection(host).request("POST", "/ping")


        def archive(dsn: str) -> None:
            from psycopg import connect

            with connect(dsn) as conn:
                conn.execute("insert into archive values (1)")
        """,
    )
    result = doctor(tmp_path, "svc:app", "--json")
    data = json_report(result)
    assert result.returncode == 1
    assert sorted(subjects(data)) == ["http.client", "psycopg", "urllib.request"]
    where = {item["subject"]: item["where"] for item in data["unguarded"]}
    assert where == {
        "urllib.request": "svc/jobs.py:10",
        "http.client": "svc/jobs.py:20",
        "psycopg": "svc/jobs.py:26",
    }
    # sqlite3 is used inside @side_effect only: guarded, and still named as unseen.
    assert data["guarded"]["sqlite3"] == "every use is inside @side_effect"
    assert subjects(data, "cannot_see") == ["sqlite3"]


def test_install_without_names_does_not_make_django_in_use(tmp_path: Path) -> None:
    write(
        tmp_path,
        "svc.py",
        """\
        import httpx
        from fastapi import FastAPI

        import shadowguard
        from shadowguard.middleware.asgi import ShadowGuardMiddleware

        client = httpx.Client()  # before install(): install() patches its class
        shadowguard.install()
        app = FastAPI()
        app.add_middleware(ShadowGuardMiddleware)
        """,
    )
    result = doctor(tmp_path, "svc:app", "--json")
    data = json_report(result)
    assert result.returncode == 0, data["unguarded"]
    assert data["integrations"]["django"]["installed"] is True
    assert data["integrations"]["django"]["used_by_app"] is False
    assert data["integrations"]["httpx"]["used_by_app"] is True
    assert list(data["guarded"]) == ["httpx"]
    assert data["live_clients"] == [
        {"kind": "httpx client", "name": "svc.client", "guarded": True, "remedy": ""}
    ]
    assert "django" not in "".join(item["subject"] for item in data["cannot_see"])


def test_a_session_created_without_its_integration_is_unguarded(tmp_path: Path) -> None:
    write(
        tmp_path,
        "svc.py",
        """\
        import requests
        from shadowguard.middleware.wsgi import ShadowGuardMiddleware

        session = requests.Session()

        def inner(environ, start_response):
            session.post("http://127.0.0.1:9/")

        app = ShadowGuardMiddleware(inner)
        """,
    )
    data = json_report(doctor(tmp_path, "svc:app", "--json"))
    assert sorted(subjects(data)) == ["requests", "requests Session"]
    assert "svc.session" in data["unguarded"][1]["problem"] + data["unguarded"][0]["problem"]


def test_a_module_without_an_application_object_says_what_it_did_not_check(tmp_path: Path) -> None:
    write(tmp_path, "worker.py", "import shadowguard\nshadowguard.install('smtplib')\n")
    result = doctor(tmp_path, "worker", "--json")
    data = json_report(result)
    assert result.returncode == 0
    assert subjects(data, "cannot_see") == ["middleware"]
    assert "cannot see" in data["verdict"]


def test_side_effect_under_another_name_still_counts(tmp_path: Path) -> None:
    write(
        tmp_path,
        "svc.py",
        """\
        import shadowguard
        import smtplib
        from shadowguard import side_effect as effect
        from shadowguard.middleware.wsgi import ShadowGuardMiddleware


        @effect(returns=None)
        def mail(to: str) -> None:
            smtplib.SMTP("127.0.0.1").sendmail("shop@example.com", [to], "hi")


        class Billing:
            @shadowguard.side_effect
            def receipt(self) -> None:
                smtplib.SMTP("127.0.0.1").sendmail("shop@example.com", ["a@b.c"], "paid")


        def inner(environ, start_response):
            mail("customer@example.com")


        app = ShadowGuardMiddleware(inner)
        """,
    )
    result = doctor(tmp_path, "svc:app", "--json")
    data = json_report(result)
    assert result.returncode == 0, data["unguarded"]
    assert data["guarded"] == {"smtplib": "every use is inside @side_effect"}


def test_a_module_alone_finds_its_factory_and_an_own_module_named_like_a_library(
    tmp_path: Path,
) -> None:
    write(tmp_path, "redis.py", "def publish(event: str) -> None:\n    pass\n")
    write(
        tmp_path,
        "svc/__init__.py",
        """\
        from flask import Flask
        from shadowguard.middleware.flask import ShadowGuard

        import redis


        def create_app():
            app = Flask(__name__)
            ShadowGuard(app)
            redis.publish("started")
            return app
        """,
    )
    result = doctor(tmp_path, "svc", "--json")
    data = json_report(result)
    assert result.returncode == 0, data["unguarded"]
    assert data["factory"] is True
    assert data["app_kind"] == "flask.app.Flask"
    assert data["guarded"] == {}


def test_an_engine_without_its_integration_is_unguarded_and_its_password_hidden(
    tmp_path: Path,
) -> None:
    app = """\
        import sqlalchemy
        import shadowguard
        from shadowguard.middleware.wsgi import ShadowGuardMiddleware

        engine = sqlalchemy.create_engine("postgresql+psycopg://postgres:hunter2@127.0.0.1/postgres")
        {install}

        def inner(environ, start_response):
            with engine.begin() as conn:
                conn.execute(sqlalchemy.text("select 1"))

        app = ShadowGuardMiddleware(inner)
        """
    write(tmp_path, "bare.py", app.format(install=""))
    result = doctor(tmp_path, "bare:app", "--json")
    data = json_report(result)
    assert sorted(subjects(data)) == ["SQLAlchemy Engine", "sqlalchemy"]
    assert "bare.engine (postgresql+psycopg://postgres:***@127.0.0.1/postgres)" in result.stdout
    assert "hunter2" not in result.stdout
    # install() after the engine was created still guards it: the guard is on its dialect class.
    write(tmp_path, "late.py", app.format(install="shadowguard.install('sqlalchemy')"))
    data = json_report(doctor(tmp_path, "late:app", "--json"))
    assert data["ok"] is True, data["unguarded"]
    assert data["live_clients"][0]["guarded"] is True


def test_a_library_a_dependency_loads_is_named_as_unseen(tmp_path: Path) -> None:
    """An SDK (here a package in a site-packages folder) that posts with requests."""
    vendor = tmp_path / "vendor" / "site-packages"
    write(
        vendor,
        "chatops/__init__.py",
        "import requests\n\ndef post(text):\n    requests.post('http://127.0.0.1:9/', data=text)\n",
    )
    write(
        tmp_path,
        "svc.py",
        """\
        import chatops
        from shadowguard.middleware.wsgi import ShadowGuardMiddleware

        def inner(environ, start_response):
            chatops.post("order created")

        app = ShadowGuardMiddleware(inner)
        """,
    )
    result = doctor(tmp_path, "svc:app", "--json", PYTHONPATH=f"{ROOT}{os.pathsep}{vendor}")
    data = json_report(result)
    assert result.returncode == 0  # not the application's own import: a warning
    unseen = {item["subject"]: item["problem"] for item in data["cannot_see"]}
    assert "loaded by chatops, not by the application's own code" in unseen["requests"]
    assert data["guarded"] == {}


def test_an_async_factory_is_awaited(tmp_path: Path) -> None:
    write(
        tmp_path,
        "svc.py",
        """\
        from fastapi import FastAPI
        from shadowguard.middleware.asgi import ShadowGuardMiddleware

        async def create_app():
            app = FastAPI()
            app.add_middleware(ShadowGuardMiddleware)
            return app
        """,
    )
    data = json_report(doctor(tmp_path, "svc:create_app", "--json"))
    assert data["ok"] is True
    assert data["factory"] is True
    assert data["app_kind"] == "fastapi.applications.FastAPI"


DJANGO_APP = """\
import django
from django.conf import settings

settings.configure(
    DATABASES={{"default": {{"ENGINE": "django.db.backends.postgresql", "NAME": "postgres",
                           "USER": "postgres", "HOST": "127.0.0.1", "PORT": 5432}}}},
    MIDDLEWARE=["shadowguard.middleware.django.ShadowGuardMiddleware"],
    ROOT_URLCONF=__name__,
)
django.setup()

from django.core.wsgi import get_wsgi_application
from django.db import connection

import shadowguard

urlpatterns = []
connection.ensure_connection()  # opened at import, before install()
{install}
application = get_wsgi_application()
"""


def test_a_django_connection_opened_before_install(tmp_path: Path) -> None:
    write(tmp_path, "bare.py", DJANGO_APP.format(install=""))
    result = doctor(tmp_path, "bare:application", "--json")
    data = json_report(result)
    assert result.returncode == 1
    assert data["middleware"] == (
        "settings.MIDDLEWARE: shadowguard.middleware.django.ShadowGuardMiddleware"
    )
    assert sorted(subjects(data)) == ["Django database connection", "django.db"]
    # django.db.connection is a proxy: the connection itself is held by Django.
    assert (
        "postgresql.base.DatabaseWrapper held elsewhere"
        in data["unguarded"][0]["problem"] + (data["unguarded"][1]["problem"])
    )
    # install() guards the connections already open (their execute_wrappers).
    write(tmp_path, "late.py", DJANGO_APP.format(install="shadowguard.install('django')"))
    data = json_report(doctor(tmp_path, "late:application", "--json"))
    assert data["ok"] is True, data["unguarded"]
    assert [c["guarded"] for c in data["live_clients"]] == [True]


AIOHTTP_APP = """\
import aiohttp
from fastapi import FastAPI

import shadowguard
from shadowguard.middleware.asgi import ShadowGuardMiddleware

session = None


async def create_app():
    global session
    session = aiohttp.ClientSession()  # made before install(), kept in a global
    {install}
    app = FastAPI()
    app.add_middleware(ShadowGuardMiddleware)
    return app
"""


def test_an_aiohttp_session_is_guarded_only_with_its_integration(tmp_path: Path) -> None:
    write(tmp_path, "svc.py", AIOHTTP_APP.format(install=""))
    data = json_report(doctor(tmp_path, "svc:create_app", "--json"))
    assert sorted(subjects(data)) == ["aiohttp", "aiohttp ClientSession"]
    write(tmp_path, "svc.py", AIOHTTP_APP.format(install="shadowguard.install('aiohttp')"))
    data = json_report(doctor(tmp_path, "svc:create_app", "--json"))
    assert data["ok"] is True, data["unguarded"]
    assert data["guarded"] == {"aiohttp": "by the aiohttp integration"}
    assert data["live_clients"] == [
        {"kind": "aiohttp ClientSession", "name": "svc.session", "guarded": True, "remedy": ""}
    ]
