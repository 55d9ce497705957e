"""PIPL in the registry: who lives where is exported to her, erased with her, and every
read of it by staff is a line of the audit trail."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select, text

from gridkit import privacy
from grids.tables import Person, Resident, StaffAssignment
from grids.testing import grid_body, rect

from .conftest import count


def housing(client, admin, community) -> dict:
    def post(path, body):
        answer = client.post(path, json=body, headers=admin)
        assert answer.status_code == 201, answer.json
        return answer.json

    grid = post("/grids", grid_body("PD", rect(100.0, 25.0, 100.05, 25.1), division_id=community))
    building = post("/buildings", {"code": "PD-B1", "name": "龙溪小区3栋", "grid_id": grid["id"],
                                   "location": {"type": "Point", "coordinates": [100.01, 25.01]}})
    unit = post(f"/buildings/{building['id']}/units", {"code": "2", "name": "2单元"})
    household = post(f"/units/{unit['id']}/households", {"code": "2-302", "floor": 3})
    return {"grid": grid["id"], "building": building["id"], "household": household["id"]}


def bind(client, admin, household: int, user_id: str) -> None:
    answer = client.post(f"/households/{household}/residents", json={"user_id": user_id}, headers=admin)
    assert answer.status_code == 201, answer.json


def trail(runtime) -> list[tuple]:
    with runtime.db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT actor_id, action, subject_id, resource FROM audit_trail ORDER BY id"))]


def test_staff_reading_who_lives_in_a_household_or_a_building_leave_a_line_each(registry, client, admin,
                                                                              community, tokens):
    place = housing(client, admin, community)
    her, neighbour = str(uuid.uuid4()), str(uuid.uuid4())
    for person in (her, neighbour):
        bind(client, admin, place["household"], person)
    worker_id = str(uuid.uuid4())
    worker = tokens.header(("grid_worker", f"grid:{place['grid']}"), sub=worker_id)
    assert sorted(client.get(f"/households/{place['household']}", headers=worker).json["residents"]) == \
        sorted([her, neighbour])
    assert client.get(f"/buildings/{place['building']}", headers=worker).status_code == 200
    # Someone who may not see residents sees none, and leaves no line.
    outsider = tokens.header(("grid_worker", "grid:999999"))
    assert client.get(f"/households/{place['household']}", headers=outsider).json["residents"] == []
    lines = trail(registry)
    resource = f"household:{place['household']}"
    assert sorted(lines) == sorted([(worker_id, "read_residents", who, resource) for who in (her, neighbour)] * 2)
    auditor = tokens.header(("auditor", "county"))
    read = client.get("/audit", headers=auditor, query_string={"subject": her})
    assert read.status_code == 200 and [line["actor_id"] for line in read.json["items"]] == [worker_id] * 2
    assert client.get("/audit", headers=worker).status_code == 403


def test_her_part_lists_where_she_lives_and_erasure_forgets_it_and_her_name(registry, client, admin,
                                                                          community, tokens):
    place = housing(client, admin, community)
    her, neighbour = str(uuid.uuid4()), str(uuid.uuid4())
    bind(client, admin, place["household"], her)
    bind(client, admin, place["household"], neighbour)
    with registry.db.transaction() as session:
        session.add(Person(user_id=her, kind="resident", display_name="林**"))
        session.add(StaffAssignment(grid_id=place["grid"], user_id=her, role="volunteer"))

    own = tokens.header(("resident", "county"), sub=her)
    part = client.get("/me/personal-data", headers=own)
    assert part.status_code == 200, part.json
    [home] = part.json["data"]["households"]
    assert home["building"] == {"code": "PD-B1", "name": "龙溪小区3栋"} and home["household"] == "2-302"
    assert home["since"].endswith("+08:00") and home["until"] is None
    assert part.json["data"]["person"]["name_as_shown_to_staff"] == "林**"
    assert [t["role"] for t in part.json["data"]["staffing"]] == ["volunteer"]

    with registry.db.transaction() as session:
        privacy.erase(registry, session, her, datetime.now(UTC))
    assert count(registry, Resident, Resident.user_id == her) == 0
    assert count(registry, Resident, Resident.user_id == neighbour) == 1
    with registry.db.transaction() as session:
        assert session.get(Person, her).display_name == privacy.ERASED_NAME
        assert session.scalars(select(StaffAssignment.role).where(StaffAssignment.user_id == her)).all() == \
            ["volunteer"]  # who ran what, by id, stays
    answer = client.get(f"/households/{place['household']}", headers=admin).json
    assert answer["residents"] == [neighbour]
    # Twice is harmless (a replay).
    with registry.db.transaction() as session:
        privacy.erase(registry, session, her, datetime.now(UTC))
