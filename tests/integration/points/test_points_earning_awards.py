"""Award rules as consumers of bus events, on PostgreSQL: each fact awards once however
often it comes (redelivered, or published again under another event id), caps hold per
person per period, conditions choose, rules are checked when written. Every test's
ledger is audited when it ends (conftest)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from contracts.dispatch import CASE_CLOSED
from points import awards
from points.tables import AwardTally
from points.testing import ADMIN, COMMUNITY, OTHER_ADMIN, OTHER_COMMUNITY

from .earning import balance, data_of, deliver, feed, rule, transfers

CLOSED = "dispatch.case.closed"
GOOD = {"outcome": {"in": ["rated", "rating_timeout"]}, "rating": {"gte": 4}}


def closed(reporter: str, *, rating: int | None = 5, outcome: str = "rated", community: str | None = COMMUNITY,
           at: datetime | None = None) -> dict:
    return {"case_id": str(uuid.uuid4()), "petition_id": str(uuid.uuid4()), "reporter_id": reporter,
            "network": "security", "grid_id": 12, "level": "grid", "at": at or datetime.now(UTC),
            "outcome": outcome, "rating": rating, "community": community}


def test_a_closed_case_awards_its_reporter_once_however_often_it_comes(points, client, tokens):
    assert rule(client, tokens.header(ADMIN), CLOSED, 20, condition=GOOD).status_code == 201
    case = closed("resident-1")
    body = feed(points, CASE_CLOSED, case, subject=case["case_id"])
    assert deliver(points, CASE_CLOSED, body) == "duplicate"  # redelivered: the inbox drops it
    feed(points, CASE_CLOSED, case, subject=case["case_id"])  # published again under a new event id
    feed(points, CASE_CLOSED, case | {"at": datetime.now(UTC)}, subject=case["case_id"])
    assert balance(points, "person", "resident-1") == 20
    assert len(transfers(points, "award")) == 1
    granted = data_of(points, awards.AWARD_GRANTED)
    assert [(g["holder"], g["amount"], g["notify"], g["reason"]) for g in granted] == [
        ("resident-1", 20, ["resident-1"], "petition")]


def test_only_cases_meeting_the_condition_in_the_rules_community_award(points, client, tokens):
    rule(client, tokens.header(ADMIN), CLOSED, 20, condition=GOOD)
    feed(points, CASE_CLOSED, closed("low", rating=3))
    feed(points, CASE_CLOSED, closed("withdrew", outcome="withdrawn", rating=None))
    feed(points, CASE_CLOSED, closed("elsewhere", community=OTHER_COMMUNITY))
    feed(points, CASE_CLOSED, closed("nowhere", community=None))
    feed(points, CASE_CLOSED, closed("timed-out", outcome="rating_timeout", rating=None))  # rating null: not ≥ 4
    assert transfers(points) == []
    assert [balance(points, "person", p) for p in ("low", "withdrew", "elsewhere", "nowhere")] == [None] * 4


def test_two_rules_on_one_event_each_award_once(points, client, tokens):
    rule(client, tokens.header(ADMIN), CLOSED, 10)
    rule(client, tokens.header(ADMIN), CLOSED, 5, condition={"rating": {"eq": 5}})
    case = closed("resident-2")
    feed(points, CASE_CLOSED, case)
    feed(points, CASE_CLOSED, case)
    assert balance(points, "person", "resident-2") == 15
    assert len(transfers(points, "award")) == 2


def test_a_cap_per_person_per_month_holds(points, client, tokens):
    rule(client, tokens.header(ADMIN), CLOSED, 30, cap=50, period="month")
    december = datetime(2026, 12, 10, 4, tzinfo=UTC)
    for _ in range(3):
        feed(points, CASE_CLOSED, closed("busy", at=december))
    assert balance(points, "person", "busy") == 50  # 30, then the 20 left, then nothing
    feed(points, CASE_CLOSED, closed("other", at=december))
    assert balance(points, "person", "other") == 30  # the cap is per person
    # January (local time: 31 Dec 17:00 UTC is 1 Jan 01:00 in Asia/Shanghai) starts afresh
    feed(points, CASE_CLOSED, closed("busy", at=datetime(2026, 12, 31, 17, tzinfo=UTC)))
    assert balance(points, "person", "busy") == 80
    with points.db.sessions() as session:
        tallies = {(t.beneficiary, t.period): t.points for t in session.scalars(select(AwardTally))}
    assert tallies == {("person:busy", "2026-12"): 50, ("person:other", "2026-12"): 30,
                       ("person:busy", "2027-01"): 30}


def test_a_cap_holds_when_awards_for_one_person_race(points, client, tokens):
    rule(client, tokens.header(ADMIN), CLOSED, 10, cap=30, period="day")
    cases = [closed("racer") for _ in range(8)]
    worker_bodies = []
    errors = []

    def one(case):
        try:
            with points.db.transaction() as session:
                worker_bodies.append(awards.award_for(session, CLOSED, case))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(c,)) for c in cases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert balance(points, "person", "racer") == 30
    assert len(transfers(points, "award")) == 3


def test_a_pooled_community_counts_a_persons_points_towards_their_household(points, client, tokens):
    from .earning import GRID, account_of, bind, grid

    client.put(f"/communities/{COMMUNITY}/earning-settings", json={"pool_by_household": True},
               headers=tokens.header(ADMIN))
    rule(client, tokens.header(ADMIN), CLOSED, 10)
    grid(points, GRID, COMMUNITY)
    feed(points, CASE_CLOSED, closed("early"))  # awarded before grids bound her
    bind(points, "early", 77)
    bind(points, "late", 77)
    feed(points, CASE_CLOSED, closed("late"))
    assert account_of(points, "person", "early").household == "77"
    assert account_of(points, "person", "late").household == "77"
    total = client.get(f"/communities/{COMMUNITY}/households/77", headers=tokens.header(ADMIN)).get_json()
    assert total["balance"] == 20


def test_rules_are_checked_when_written(points, client, tokens):
    admin = tokens.header(ADMIN)
    bad = [
        {"event": "dispatch.case.opened", "points": 5},  # not an event that awards
        {"event": CLOSED, "points": 0},
        {"event": CLOSED, "points": -5},
        {"event": CLOSED, "points": 5.5},
        {"event": CLOSED, "points": 5, "condition": {"colour": {"eq": "red"}}},
        {"event": CLOSED, "points": 5, "condition": {"rating": {"about": 4}}},
        {"event": CLOSED, "points": 5, "condition": {"rating": {"gte": "4"}}},
        {"event": CLOSED, "points": 5, "condition": {"rating": 4}},
        {"event": CLOSED, "points": 5, "cap": 10},
        {"event": CLOSED, "points": 5, "period": "month"},
        {"event": CLOSED, "points": 5, "cap": 0, "period": "month"},
    ]
    for body in bad:
        answer = client.post(f"/communities/{COMMUNITY}/award-rules", json={"id": str(uuid.uuid4())} | body,
                             headers=admin)
        assert answer.status_code == 422, (body, answer.get_json())
        assert answer.get_json()["errors"]
    assert rule(client, tokens.header(OTHER_ADMIN), CLOSED, 5).status_code == 403
    assert client.get(f"/communities/{COMMUNITY}/award-rules", headers=admin).get_json()["items"] == []
    # the same id again: the rule (200); with another amount: refused
    body = {"id": str(uuid.uuid4()), "event": CLOSED, "points": 5}
    assert client.post(f"/communities/{COMMUNITY}/award-rules", json=body, headers=admin).status_code == 201
    assert client.post(f"/communities/{COMMUNITY}/award-rules", json=body, headers=admin).status_code == 200
    again = client.post(f"/communities/{COMMUNITY}/award-rules", json=body | {"points": 6}, headers=admin)
    assert again.status_code == 409 and again.get_json()["fields"] == ["points"]


def test_a_rule_switched_off_awards_nothing(points, client, tokens):
    made = rule(client, tokens.header(ADMIN), CLOSED, 10).get_json()
    answer = client.patch(f"/award-rules/{made['id']}", json={"active": False}, headers=tokens.header(ADMIN))
    assert answer.status_code == 200 and answer.get_json()["active"] is False
    assert client.patch(f"/award-rules/{made['id']}", json={"active": True},
                        headers=tokens.header(OTHER_ADMIN)).status_code == 403
    feed(points, CASE_CLOSED, closed("nobody"))
    assert transfers(points) == []



def test_earning_works_the_same_on_sqlite(points_sqlite, tokens):
    from points.events import ACTIVITY_ATTENDED

    from .earning import loop_back

    client = points_sqlite.app(testing=True).test_client()
    admin = tokens.header(ADMIN)
    rule(client, admin, CLOSED, 30, cap=40, period="month")
    rule(client, admin, "points.activity.attended", 5)
    case = closed("sqlite-1")
    for data in (case, case, closed("sqlite-1")):
        feed(points_sqlite, CASE_CLOSED, data)
    assert balance(points_sqlite, "person", "sqlite-1") == 40
    start = datetime.now(UTC) - timedelta(minutes=5)
    made = client.post(f"/communities/{COMMUNITY}/activities", headers=admin, json={
        "title": "读书会", "places": 1, "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=1)).isoformat()}).get_json()
    assert client.post(f"/activities/{made['id']}/signups", headers=tokens.header(sub="sqlite-1")).status_code == 201
    assert client.post(f"/activities/{made['id']}/signups", headers=tokens.header(sub="x")).status_code == 409
    assert client.post(f"/activities/{made['id']}/attendance", json={"code": made["attendance_code"]},
                       headers=tokens.header(sub="sqlite-1")).status_code == 201
    loop_back(points_sqlite, ACTIVITY_ATTENDED)
    assert balance(points_sqlite, "person", "sqlite-1") == 45
    client.put(f"/communities/{COMMUNITY}/earning-settings", json={"expiry_months": 1}, headers=admin)
    assert awards.expire(points_sqlite.db, datetime.now(UTC) + timedelta(days=70)) == 1
    assert balance(points_sqlite, "person", "sqlite-1") == 0
