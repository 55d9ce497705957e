"""The database plumbing on real PostgreSQL: pooled connections that died while idle."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text

from gridkit import db as kit_db
from gridkit.db import Database


@pytest.fixture
def database(fresh_pg_database):
    database = Database(fresh_pg_database("pool"))
    yield database
    database.dispose()


def backend_pid(database: Database) -> int:
    with database.transaction() as session:
        return session.execute(text("SELECT pg_backend_pid()")).scalar_one()


def terminate(database: Database, pid: int) -> None:
    with psycopg.connect(database.url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_pooled_connection_killed_while_idle_is_replaced_before_anyone_uses_it(database, monkeypatch):
    killed = backend_pid(database)
    terminate(database, killed)
    monkeypatch.setattr(kit_db, "IDLE_PING_SECONDS", 0.0)  # as if it had idled past the threshold

    assert backend_pid(database) != killed  # no error: pinged, found dead, replaced


def test_a_connection_used_a_moment_ago_is_not_pinged(database):
    backend_pid(database)
    pings = []
    original = database.engine.dialect.do_ping
    database.engine.dialect.do_ping = lambda conn: pings.append(conn) or original(conn)  # type: ignore[method-assign]
    try:
        backend_pid(database)
    finally:
        database.engine.dialect.do_ping = original  # type: ignore[method-assign]
    assert pings == []
