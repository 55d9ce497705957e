"""A database URL naming several servers (a primary and its replicas): the pool and the
relay's own LISTEN connection both reach the one that takes writes. Failing over between
real servers under load is tests/faults/test_database_loss.py."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text

from gridkit.db import Database
from gridkit.processes import free_port
from gridkit.testkit import PG_ADMIN_URL


@pytest.fixture
def database(fresh_pg_database):
    name = fresh_pg_database("hosts").rsplit("/", 1)[1]
    server = PG_ADMIN_URL.split("@", 1)[1].split("/", 1)[0]
    # The first host is down (nothing listens there): libpq goes on to the next.
    url = f"postgresql://root@/{name}?host=127.0.0.1:{free_port()}&host={server}&target_session_attrs=read-write"
    database = Database(url)
    yield database
    database.dispose()


def test_the_pool_connects_to_the_server_that_takes_writes(database):
    with database.transaction() as session:
        assert session.execute(text("SELECT NOT pg_is_in_recovery()")).scalar_one()


def test_a_connection_of_its_own_gets_every_host(database):
    with psycopg.connect(**database.connect_arguments(), autocommit=True) as conn:
        conn.execute("LISTEN gridgov_outbox")  # what the relay does with it
        assert conn.execute("SELECT current_database()").fetchone()[0] == database.engine.url.database
