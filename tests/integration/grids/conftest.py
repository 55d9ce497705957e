import pytest
from sqlalchemy import func, select

from grids.service import spec
from grids.testing import grid_body, rect, seed_divisions


@pytest.fixture
def registry(make_runtime):
    """A migrated grids runtime on PostgreSQL with county → street → two communities."""
    runtime = make_runtime(spec, db="postgres")
    runtime.extras["divisions"] = seed_divisions(runtime)
    return runtime


@pytest.fixture
def client(registry):
    return registry.app(testing=True).test_client()


@pytest.fixture
def admin(tokens):
    return tokens.header(("county_admin", "county"))


@pytest.fixture
def community(registry):
    return registry.extras["divisions"]["DL-01-01"]


def count(runtime, model, *where) -> int:
    with runtime.db.sessions() as session:
        return session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def make_grid(client, headers, code, box, **kw):
    response = client.post("/grids", json=grid_body(code, rect(*box), **kw), headers=headers)
    assert response.status_code == 201, response.json
    return response.json
