import pytest

from dispatch.service import spec
from dispatch.testing import headers, seed_world


@pytest.fixture
def dispatch(make_runtime):
    """A migrated dispatch runtime on PostgreSQL with the small world fed as events."""
    runtime = make_runtime(spec, db="postgres")
    runtime.extras["world"] = seed_world(runtime)
    return runtime


@pytest.fixture
def client(dispatch):
    return dispatch.app(testing=True).test_client()


@pytest.fixture
def as_(tokens):
    """as_("worker-sw1-a") → Authorization header with that user's grants."""
    return lambda user: headers(tokens, user)


def events(runtime, name: str | None = None) -> list[dict]:
    """Data of the events dispatch recorded in its outbox (optionally of one type), oldest first."""
    import json

    from sqlalchemy import select

    from dispatch.tables import outbox

    with runtime.db.sessions() as session:
        rows = session.execute(select(outbox.table.c.routing_key, outbox.table.c.body)
                               .order_by(outbox.table.c.id)).all()
    return [json.loads(body)["data"] | {"type": key.rsplit(".", 1)[0]} for key, body in rows
            if name is None or key.rsplit(".", 1)[0] == name]


def count(runtime, model, *where) -> int:
    from sqlalchemy import func, select

    with runtime.db.sessions() as session:
        return session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()
