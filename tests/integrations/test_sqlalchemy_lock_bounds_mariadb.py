"""Lock bounds of shadow transactions on real MariaDB (issue 19).

MariaDB's ``innodb_lock_wait_timeout`` (whole seconds) and ``max_statement_time`` are
session variables: the guard sets them for the shadow transaction and puts the previous
values back when the scope ends or the connection returns to the pool.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

import shadowguard
from tests.integrations._support import refusal_seconds_behind
from tests.peers.mariadb import mysql_connect

SINK = "sqlalchemy"
pytestmark = pytest.mark.usefixtures("installed")

VARIABLES = ("innodb_lock_wait_timeout", "max_statement_time", "idle_transaction_timeout")


def variables(conn: Connection) -> tuple[Any, ...]:
    names = ", ".join(f"@@SESSION.{v}" for v in VARIABLES)
    return tuple(float(x) for x in conn.execute(text(f"SELECT {names}")).one())


def server_defaults(oracle: Any) -> tuple[float, ...]:
    with oracle.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(f"@@SESSION.{v}" for v in VARIABLES))
        return tuple(float(x) for x in cursor.fetchone())


def test_the_bounds_apply_in_shadow_and_are_put_back_for_the_primary(
    mariadb_table: tuple[Engine, str, Any],
) -> None:
    engine, t, oracle = mariadb_table
    defaults = server_defaults(oracle)
    with shadowguard.shadow(), engine.begin() as c:
        c.execute(text(f"INSERT INTO {t} (id) VALUES (1)"))
        shadow_id = c.execute(text("SELECT CONNECTION_ID()")).scalar_one()
        assert variables(c) == (1.0, 5.0, 5.0)
    with engine.begin() as c:
        assert c.execute(text("SELECT CONNECTION_ID()")).scalar_one() == shadow_id
        assert variables(c) == defaults
    with oracle.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {t}")
        assert cursor.fetchone()[0] == 0


def test_a_connection_kept_past_the_scope_is_put_back_when_it_ends(
    mariadb_table: tuple[Engine, str, Any],
) -> None:
    engine, t, oracle = mariadb_table
    defaults = server_defaults(oracle)
    with engine.connect() as kept:
        with shadowguard.shadow():
            kept.execute(text(f"INSERT INTO {t} (id) VALUES (1)"))
            assert variables(kept)[0] == 1.0
        assert variables(kept) == defaults
        kept.execute(text(f"INSERT INTO {t} (id) VALUES (2)"))
        kept.commit()
    with oracle.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {t}")
        assert cursor.fetchall() == ((2,),)


def test_a_shadow_insert_of_a_key_the_primary_holds_fails_within_a_second(
    mariadb_table: tuple[Engine, str, Any], mariadb_database: str
) -> None:
    engine, t, oracle = mariadb_table
    primary = mysql_connect(mariadb_database)
    primary.autocommit(False)
    with primary.cursor() as cursor:
        cursor.execute(f"INSERT INTO {t} (id, name) VALUES (1, 'primary')")
    insert = f"INSERT INTO {t} (id, name) VALUES (1, 'shadow')"
    waited = refusal_seconds_behind(primary, engine, insert, "Lock wait timeout")
    # 100 ms rounds up to MariaDB's whole second, not its default of 50.
    assert waited < 2.0, f"the shadow waited {waited:.3f} s"
    with oracle.cursor() as cursor:
        cursor.execute(f"SELECT id, name FROM {t}")
        assert cursor.fetchall() == ((1, "primary"),)
    with engine.connect() as c:
        assert variables(c) == server_defaults(oracle)


def test_a_hung_shadow_holding_a_lock_releases_the_waiting_primary(
    mariadb_table: tuple[Engine, str, Any], mariadb_database: str
) -> None:
    """The shadow locks a row and hangs: MariaDB ends it after the idle bound (1 s here)."""
    engine, t, oracle = mariadb_table
    with oracle.cursor() as cursor:
        cursor.execute(f"INSERT INTO {t} (id, name) VALUES (1, 'before')")
    shadowguard.configure(db_idle_timeout_ms=1000)
    locked = threading.Event()
    errors: list[BaseException] = []

    def shadow_work() -> None:
        with shadowguard.shadow(), engine.connect() as c:
            c.execute(text(f"UPDATE {t} SET name = 'shadow' WHERE id = 1"))
            locked.set()
            time.sleep(4)  # a hung shadow handler, its transaction open
            try:
                c.execute(text("SELECT 1"))
            except DBAPIError as exc:  # the server closed the connection
                errors.append(exc)

    shadow = threading.Thread(target=shadow_work)
    shadow.start()
    try:
        assert locked.wait(5)
        primary = mysql_connect(mariadb_database)
        try:
            with primary.cursor() as cursor:
                cursor.execute("SET SESSION innodb_lock_wait_timeout = 30")
                started = time.monotonic()
                cursor.execute(f"UPDATE {t} SET name = 'primary' WHERE id = 1")
                waited = time.monotonic() - started
        finally:
            primary.close()
    finally:
        shadow.join()
        shadowguard._config.reset()
    assert waited < 2.5, f"the primary waited {waited:.3f} s"
    assert errors, "the shadow's connection outlived the idle bound"
    with oracle.cursor() as cursor:
        cursor.execute(f"SELECT name FROM {t}")
        assert cursor.fetchall() == (("primary",),)
