"""Monthly hygiene inspections (清洁户) on PostgreSQL: an inspector of the community records a
household once a month, a passing household earns once (its account, or its members'),
the clean-household mark is readable, bad input changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from points.events import AWARD_GRANTED, HOUSEHOLD_INSPECTED
from points.tables import Inspection
from points.testing import ADMIN, COMMUNITY, OTHER_COMMUNITY

from .earning import (
    GRID,
    OTHER_GRID,
    balance,
    bind,
    data_of,
    feed,
    grid,
    loop_back,
    rule,
    transfers,
)

INSPECTED = "points.household.inspected"
MONTH = datetime.now(UTC).strftime("%Y-%m")
CLEAN = {"personal": 90, "household": 85, "public": 80}


def inspector(tokens, grid_id: int = GRID, sub: str = "inspector-1"):
    return tokens.header(("grid_worker", f"grid:{grid_id}"), sub=sub)


def put(client, headers, household: str, body: dict, *, month: str = MONTH, community: str = COMMUNITY):
    return client.put(f"/communities/{community}/households/{household}/inspections/{month}", json=body,
                      headers=headers)


def inspections(runtime) -> int:
    with runtime.db.sessions() as session:
        return session.execute(select(func.count()).select_from(Inspection)).scalar_one()


def world(points, client, tokens, points_each: int = 10):
    grid(points, GRID, COMMUNITY)
    grid(points, OTHER_GRID, OTHER_COMMUNITY)
    assert rule(client, tokens.header(ADMIN), INSPECTED, points_each,
                condition={"passed": {"eq": True}}).status_code == 201


def test_a_clean_household_is_inspected_once_a_month_and_earns_once(points, client, tokens):
    world(points, client, tokens)
    first = put(client, inspector(tokens), "h-1", CLEAN)
    assert first.status_code == 201 and first.get_json()["passed"] is True
    again = put(client, inspector(tokens, sub="inspector-2"), "h-1", CLEAN)  # the same results: a replay
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]
    other = put(client, inspector(tokens), "h-1", CLEAN | {"public": 60})
    assert other.status_code == 409 and other.get_json()["type"].endswith("inspected-already")
    assert put(client, inspector(tokens), "h-2", CLEAN | {"personal": 79}).get_json()["passed"] is False

    assert loop_back(points, HOUSEHOLD_INSPECTED) == ["processed", "duplicate"] * 2  # each delivered twice
    for data in data_of(points, HOUSEHOLD_INSPECTED):  # and published again under new event ids
        feed(points, HOUSEHOLD_INSPECTED, HOUSEHOLD_INSPECTED.load(data))
    assert balance(points, "household", "h-1") == 10
    assert balance(points, "household", "h-2") is None
    assert len(transfers(points, "award")) == 1

    marks = client.get(f"/communities/{COMMUNITY}/clean-households?month={MONTH}",
                       headers=tokens.header(sub="a-resident")).get_json()["items"]
    assert [m["household_id"] for m in marks] == ["h-1"]
    history = client.get(f"/communities/{COMMUNITY}/households/h-2/inspections",
                         headers=tokens.header(sub="a-resident")).get_json()["items"]
    assert [(m["month"], m["passed"], m["personal"]) for m in history] == [(MONTH, False, 79)]


def test_a_community_that_rewards_members_pays_each_member_once(points, client, tokens):
    world(points, client, tokens)
    client.put(f"/communities/{COMMUNITY}/earning-settings", json={"hygiene_to": "members"},
               headers=tokens.header(ADMIN))
    bind(points, "mother", 31)
    bind(points, "son", 31)
    assert put(client, inspector(tokens), "31", CLEAN).status_code == 201
    loop_back(points, HOUSEHOLD_INSPECTED, times=3)
    assert [balance(points, "person", p) for p in ("mother", "son")] == [10, 10]
    assert balance(points, "household", "31") is None
    notices = data_of(points, AWARD_GRANTED)
    assert sorted((n["holder"], n["notify"]) for n in notices) == [("mother", ["mother"]), ("son", ["son"])]


def test_a_households_award_tells_its_members(points, client, tokens):
    world(points, client, tokens)
    bind(points, "grandma", 41)
    put(client, inspector(tokens), "41", CLEAN)
    loop_back(points, HOUSEHOLD_INSPECTED)
    [notice] = data_of(points, AWARD_GRANTED)
    assert (notice["kind"], notice["holder"], notice["notify"], notice["reason"]) == (
        "household", "41", ["grandma"], "hygiene")


def test_only_an_inspector_of_the_community_records_and_bad_results_change_nothing(points, client, tokens):
    world(points, client, tokens)
    bind(points, "elsewhere", 51, grid_id=OTHER_GRID)
    assert put(client, inspector(tokens, grid_id=OTHER_GRID), "h-3", CLEAN).status_code == 403
    assert put(client, tokens.header(("grid_worker", "grid:999")), "h-3", CLEAN).status_code == 403
    assert put(client, tokens.header(sub="a-resident"), "h-3", CLEAN).status_code == 403
    assert put(client, inspector(tokens), "51", CLEAN).status_code == 422  # a household of another community
    for body in (CLEAN | {"personal": 101}, CLEAN | {"public": -1}, CLEAN | {"household": 85.5},
                 CLEAN | {"household": "85"}, {"personal": 90, "household": 85}, CLEAN | {"colour": "red"}):
        assert put(client, inspector(tokens), "h-3", body).status_code == 422, body
    for month in ("2026-13", "26-01", "2999-01"):
        assert put(client, inspector(tokens), "h-3", CLEAN, month=month).status_code == 422, month
    assert put(client, tokens.header(ADMIN), "h-3", CLEAN).status_code == 201  # the community's admin may
    assert inspections(points) == 1
