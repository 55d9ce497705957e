"""points on real PostgreSQL (and SQLite where said). Every ledger a test built is audited
when the test ends (points.audit): whatever the test did, the books must balance."""

import pytest

from points.service import spec
from points.testing import ADMIN, assert_sound


@pytest.fixture
def audited():
    """Runtimes to audit once the test is over (the fixtures below add theirs)."""
    runtimes = []
    yield runtimes
    for runtime in runtimes:
        assert_sound(runtime)


@pytest.fixture
def points(make_runtime, audited):
    runtime = make_runtime(spec, db="postgres")
    audited.append(runtime)
    return runtime


@pytest.fixture
def points_sqlite(make_runtime, audited):
    runtime = make_runtime(spec, db="sqlite")
    audited.append(runtime)
    return runtime


@pytest.fixture
def client(points):
    return points.app(testing=True).test_client()


@pytest.fixture
def admin(tokens):
    return tokens.header(ADMIN)


def outbox_events(runtime, name: str | None = None) -> list[dict]:
    """The data of the events points recorded (optionally of one type), oldest first."""
    import json

    from sqlalchemy import select

    from points.tables import outbox

    with runtime.db.sessions() as session:
        rows = session.execute(select(outbox.table.c.routing_key, outbox.table.c.body)
                               .order_by(outbox.table.c.id)).all()
    return [json.loads(body)["data"] | {"type": key.rsplit(".", 1)[0]} for key, body in rows
            if name is None or key.rsplit(".", 1)[0] == name]
