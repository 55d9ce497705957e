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


def prepared_on_server(database: Database) -> set[str]:
    with database.engine.connect() as conn:
        return set(conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars())


def test_a_rollback_keeps_prepared_statements_and_still_undoes_the_transaction(fresh_pg_database):
    # psycopg forgets (DEALLOCATE ALL) what it prepared at every rollback, and every read-only
    # session ends in one: a busy web would parse and plan its writes again and again.
    database = Database(fresh_pg_database("rollback"), pool_size=1)  # one connection: each session reuses it
    try:
        with database.transaction() as session:
            session.execute(text("CREATE TABLE lamps (id int PRIMARY KEY)"))
        for i in range(8):  # psycopg prepares a statement on its 5th run
            with database.sessions() as session:  # a read: ends in a rollback
                session.execute(text("SELECT count(*) FROM lamps WHERE id > :i"), {"i": i}).scalar()
        assert any("FROM lamps WHERE id >" in s for s in prepared_on_server(database))

        with pytest.raises(RuntimeError), database.transaction() as session:
            session.execute(text("INSERT INTO lamps VALUES (1)"))
            raise RuntimeError("called off")
        with pytest.raises(Exception, match="division by zero"), database.transaction() as session:
            session.execute(text("INSERT INTO lamps VALUES (2)"))
            session.execute(text("SELECT 1 / 0"))

        with database.sessions() as session:
            assert session.execute(text("SELECT count(*) FROM lamps")).scalar() == 0
        assert any("FROM lamps WHERE id >" in s for s in prepared_on_server(database))
    finally:
        database.dispose()
