"""Every service's migrations build exactly the tables its code declares, on both databases."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from gridkit import registry
from identity.crypto import new_key


@pytest.mark.parametrize("db", ["postgres", "sqlite"])
@pytest.mark.parametrize("name", list(registry.SERVICES))
def test_the_migrations_create_exactly_the_declared_tables(make_runtime, name, db):
    spec = registry.load(name)
    runtime = make_runtime(spec, db=db, data_key=new_key())
    with runtime.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                spec.base.metadata)
    assert diff == []
