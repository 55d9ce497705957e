"""intake against real PostgreSQL: a migrated runtime with grids' places fed in, and people."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import func, select

from intake.service import spec
from intake.testing import INSIDE, JPEG, seed_places


@pytest.fixture
def intake(make_runtime):
    runtime = make_runtime(spec, db="postgres")
    seed_places(runtime)
    return runtime


@pytest.fixture
def client(intake):
    return intake.app(testing=True).test_client()


class People:
    """Signs tokens for residents and staff; ``people.resident()`` → (user id, headers)."""

    def __init__(self, tokens):
        self.tokens = tokens

    def person(self, *grants: tuple[str, str], name: str | None = None) -> tuple[str, dict]:
        sub = str(uuid.uuid4())
        claims = {"name": name} if name else {}
        token = self.tokens.issue(list(grants), sub=sub, **claims)
        return sub, {"Authorization": f"Bearer {token}"}

    def resident(self, name: str = "王小明"):
        return self.person(("resident", "county"), name=name)

    def worker(self):
        return self.person(("grid_worker", "grid:11"))

    def county_admin(self):
        return self.person(("county_admin", "county"))


@pytest.fixture
def people(tokens):
    return People(tokens)


def petition_body(**overrides) -> dict:
    return {"category": "water_leak", "description": "楼道水管漏水，地面积水", "place": dict(INSIDE)} | overrides


def submit(client, headers, expect: int = 201, **overrides) -> dict:
    response = client.post("/petitions", json=petition_body(**overrides), headers=headers)
    assert response.status_code == expect, response.json
    return response.json


def upload(client, headers, data: bytes = JPEG, content_type: str = "image/jpeg"):
    return client.post("/photos", data=data, headers=headers | {"Content-Type": content_type})


def outbox_events(runtime, routing_key: str | None = None) -> list[dict]:
    t = runtime.outbox.table
    with runtime.db.engine.connect() as conn:
        query = select(t.c.routing_key, t.c.body).order_by(t.c.id)
        if routing_key:
            query = query.where(t.c.routing_key == routing_key)
        return [json.loads(r.body) for r in conn.execute(query)]


def count(runtime, model, *where) -> int:
    with runtime.db.sessions() as session:
        return session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()
