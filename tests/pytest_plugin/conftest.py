"""Peers of the plugin tests: a database with a fresh table, a loopback HTTP server."""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa

# pytester's in-process runs drop the modules first imported inside them; a C extension
# imported again afterwards can crash the interpreter. Import those the inner runs use here.
for _name in ("asyncpg", "psycopg", "greenlet", "sqlalchemy.ext.asyncio", "sqlalchemy.orm"):
    __import__(_name)


@pytest.fixture(autouse=True)
def _no_django_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner runs must not find the Django databases other tests of this process configured."""
    monkeypatch.delitem(sys.modules, "django.conf", raising=False)


class LoopbackServer:
    """A real HTTP server on 127.0.0.1; ``hits`` counts the requests that reached it."""

    def __init__(self) -> None:
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_POST = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
def loopback_server() -> Iterator[LoopbackServer]:
    server = LoopbackServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        server.thread.join(5)


class Database:
    """An engine plus a fresh table ``name`` (id, item) in its own database."""

    def __init__(self, engine: sa.Engine, schema: str) -> None:
        self.engine = engine
        self.name = f"orders_{uuid.uuid4().hex[:8]}"
        self.qualified = f"{schema}.{self.name}"
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE TABLE {self.name} (id integer PRIMARY KEY, item text)")
            conn.exec_driver_sql(f"INSERT INTO {self.name} VALUES (1, 'seed')")

    def raw_write(self, sql: str) -> None:
        """A write through the DBAPI connection: a path no SQLAlchemy event sees."""
        dbapi = self.engine.raw_connection()
        try:
            cursor = dbapi.cursor()
            cursor.execute(sql.format(table=self.name))
            dbapi.commit()
        finally:
            dbapi.close()

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.exec_driver_sql(f"SELECT count(*) FROM {self.name}").scalar_one())


BOTH_DATABASES = pytest.mark.parametrize(
    "db", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh table in a SQLite file, or in PostgreSQL with ``@BOTH_DATABASES``."""
    if getattr(request, "param", "sqlite") == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
        schema = "main"
    else:
        engine = sa.create_engine(request.getfixturevalue("postgres_url"))
        schema = "public"
    database = Database(engine, schema)
    try:
        yield database
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {database.name}")
        engine.dispose()
