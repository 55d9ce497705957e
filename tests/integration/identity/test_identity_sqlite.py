"""identity runs the same on SQLite (embedded mode), and its migration matches its tables."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from conftest import register

from identity.crypto import new_key
from identity.service import spec
from identity.tables import Base

PASSWORD = "correct horse battery"


def test_register_login_refresh_and_logout_on_sqlite(make_runtime):
    identity = make_runtime(spec, db="sqlite")
    client = identity.app(testing=True).test_client()
    assert register(client, {"phone": "13512345678", "name": "嵌入式", "password": PASSWORD}).status_code == 201
    tokens = client.post("/tokens", json={"grant_type": "password", "phone": "13512345678",
                                          "password": PASSWORD}).json
    assert client.get("/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}).json["phone"] == "13512345678"
    rotated = client.post("/tokens", json={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    assert client.post("/tokens", json={"grant_type": "refresh_token",
                                        "refresh_token": tokens["refresh_token"]}).status_code == 401
    for _ in range(10):
        client.post("/tokens", json={"grant_type": "password", "phone": "13512345678", "password": "wrong-wrong"})
    assert client.post("/tokens", json={"grant_type": "password", "phone": "13512345678",
                                        "password": PASSWORD}).status_code == 429


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_the_migration_creates_exactly_the_declared_tables(make_runtime, db):
    identity = make_runtime(spec, db=db, data_key=new_key())
    with identity.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_an_explicit_data_key_is_used_instead_of_a_generated_file(make_runtime, tmp_path):
    make_runtime(spec, db="sqlite", data_key=new_key())
    assert not (tmp_path / "identity-data.key").exists()
