"""A database that is gone is a 503 problem to retry, never a 500, however the driver says it.

The real thing (a PostgreSQL primary crashed, restarted, failed over under a stream of
requests) is tests/faults/test_database_loss.py; these are the shapes it takes."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import exc as sa

from gridkit.config import Settings
from gridkit.db import unavailable
from gridkit.service import Runtime

from .sample_service import spec

PROBLEM = "application/problem+json"


def wrapped(error: type[sa.DBAPIError], orig: Exception) -> sa.DBAPIError:
    return error("SELECT 1", {}, orig)


GONE = {
    # SQLAlchemy's, as its connections and pool raise them
    "operational": wrapped(sa.OperationalError, psycopg.OperationalError("server closed the connection")),
    "interface": wrapped(sa.InterfaceError, psycopg.InterfaceError("the connection is closed")),
    "pool exhausted": sa.TimeoutError("QueuePool limit reached"),
    "stale on checkout": sa.DisconnectionError("stale connection"),
    "a standby": wrapped(sa.InternalError, psycopg.errors.ReadOnlySqlTransaction("read-only transaction")),
    "shutting down": wrapped(sa.DatabaseError, psycopg.errors.AdminShutdown("terminating connection")),
    # the driver's own, where nothing wraps them (Engine.raw_connection, a connection of one's own)
    "raw operational": psycopg.OperationalError("connection refused"),
    "raw interface": psycopg.InterfaceError("the connection is lost"),
}
BUGS = {
    "integrity": wrapped(sa.IntegrityError, psycopg.errors.UniqueViolation("duplicate key")),
    "data": wrapped(sa.DataError, psycopg.errors.NumericValueOutOfRange("out of range")),
    "programming": wrapped(sa.ProgrammingError, psycopg.errors.UndefinedTable("no such table")),
    "plain": RuntimeError("boom"),
}


@pytest.fixture
def client(tmp_path, tokens):
    settings = Settings(service="sample", database_url=f"sqlite:///{tmp_path}/sample.db")
    app = Runtime.build(spec, settings, verifier=tokens.verifier()).app(testing=True)

    def fail(kind: str):
        raise {**GONE, **BUGS}[kind]

    app.add_url_rule("/fail/<kind>", view_func=fail)
    return app.test_client()


@pytest.mark.parametrize("kind", list(GONE))
def test_a_database_that_is_gone_is_a_503_problem_saying_when_to_retry(client, kind):
    response = client.get(f"/fail/{kind}")
    assert response.status_code == 503 and response.content_type == PROBLEM
    assert response.json["type"].endswith("unavailable") and response.headers["Retry-After"]
    assert unavailable(GONE[kind])


@pytest.mark.parametrize("kind", list(BUGS))
def test_a_database_error_that_is_not_an_outage_is_not_a_503(client, kind):
    assert client.get(f"/fail/{kind}").status_code in (422, 500)
    assert not unavailable(BUGS[kind])
