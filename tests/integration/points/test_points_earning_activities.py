"""Activities on PostgreSQL: published with places, signed up for (接龙报名) never past the
places however many race, attended once with the door code during the activity, and
the attendance awards once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from points.events import ACTIVITY_ATTENDED
from points.tables import Activity
from points.testing import ADMIN, COMMUNITY, OTHER_ADMIN

from .earning import balance, data_of, feed, loop_back, rule, transfers


def publish(client, headers, *, places: int = 2, starts_in: timedelta = timedelta(minutes=-10),
            lasts: timedelta = timedelta(hours=2), community: str = COMMUNITY):
    starts = datetime.now(UTC) + starts_in
    return client.post(f"/communities/{community}/activities", headers=headers, json={
        "title": "周末大扫除", "places": places, "starts_at": starts.isoformat(),
        "ends_at": (starts + lasts).isoformat()})


def person(tokens, name: str):
    return tokens.header(sub=name)


def test_signing_up_stops_at_the_places_and_attendance_awards_once(points, client, tokens):
    rule(client, tokens.header(ADMIN), "points.activity.attended", 15)
    made = publish(client, tokens.header(ADMIN))
    assert made.status_code == 201
    activity, code = made.get_json()["id"], made.get_json()["attendance_code"]
    assert "attendance_code" not in client.get(f"/activities/{activity}", headers=person(tokens, "ann")).get_json()

    assert client.post(f"/activities/{activity}/signups", headers=person(tokens, "ann")).status_code == 201
    again = client.post(f"/activities/{activity}/signups", headers=person(tokens, "ann"))
    assert again.status_code == 200 and again.get_json()["taken"] == 1
    assert client.post(f"/activities/{activity}/signups", headers=person(tokens, "bob")).status_code == 201
    full = client.post(f"/activities/{activity}/signups", headers=person(tokens, "cat"))
    assert full.status_code == 409 and full.get_json()["type"].endswith("activity-full")
    assert client.get(f"/activities/{activity}", headers=person(tokens, "cat")).get_json()["left"] == 0

    wrong = str((int(code) + 1) % 10**6).zfill(6)
    answer = client.post(f"/activities/{activity}/attendance", json={"code": wrong}, headers=person(tokens, "ann"))
    assert answer.status_code == 422 and "code" in answer.get_json()["errors"]
    stranger = client.post(f"/activities/{activity}/attendance", json={"code": code}, headers=person(tokens, "cat"))
    assert stranger.status_code == 409 and stranger.get_json()["type"].endswith("not-signed-up")
    assert client.post(f"/activities/{activity}/attendance", json={"code": code},
                       headers=person(tokens, "ann")).status_code == 201
    used = client.post(f"/activities/{activity}/attendance", json={"code": code}, headers=person(tokens, "ann"))
    assert used.status_code == 409 and used.get_json()["type"].endswith("attended-already")

    assert loop_back(points, ACTIVITY_ATTENDED) == ["processed", "duplicate"]
    [attended] = data_of(points, ACTIVITY_ATTENDED)
    feed(points, ACTIVITY_ATTENDED, ACTIVITY_ATTENDED.load(attended))  # published again under a new event id
    assert [balance(points, "person", p) for p in ("ann", "bob", "cat")] == [15, None, None]
    assert len(transfers(points, "award")) == 1
    signups = client.get(f"/activities/{activity}/signups", headers=tokens.header(ADMIN)).get_json()["items"]
    assert [(s["user_id"], s["attended_at"] is not None) for s in signups] == [("ann", True), ("bob", False)]
    assert client.get(f"/activities/{activity}/signups", headers=person(tokens, "bob")).status_code == 403


def test_attendance_is_taken_only_while_the_activity_runs(points, client, tokens):
    made = publish(client, tokens.header(ADMIN), starts_in=timedelta(days=2)).get_json()
    client.post(f"/activities/{made['id']}/signups", headers=person(tokens, "early"))
    early = client.post(f"/activities/{made['id']}/attendance", json={"code": made["attendance_code"]},
                        headers=person(tokens, "early"))
    assert early.status_code == 409 and early.get_json()["type"].endswith("outside-activity-time")
    with points.db.transaction() as session:  # the activity is over
        session.execute(update(Activity).where(Activity.id == made["id"]).values(
            starts_at=datetime.now(UTC) - timedelta(hours=3), ends_at=datetime.now(UTC) - timedelta(hours=1)))
    late = client.post(f"/activities/{made['id']}/attendance", json={"code": made["attendance_code"]},
                       headers=person(tokens, "early"))
    assert late.status_code == 409
    over = client.post(f"/activities/{made['id']}/signups", headers=person(tokens, "late"))
    assert over.status_code == 409 and over.get_json()["type"].endswith("activity-over")


def test_too_many_wrong_codes_stop_the_guessing(points, client, tokens):
    made = publish(client, tokens.header(ADMIN)).get_json()
    code = made["attendance_code"]
    client.post(f"/activities/{made['id']}/signups", headers=person(tokens, "guesser"))
    wrong = [str((int(code) + i) % 10**6).zfill(6) for i in range(1, 6)]
    assert [client.post(f"/activities/{made['id']}/attendance", json={"code": w},
                        headers=person(tokens, "guesser")).status_code for w in wrong] == [422] * 5
    stopped = client.post(f"/activities/{made['id']}/attendance", json={"code": code},
                          headers=person(tokens, "guesser"))
    assert stopped.status_code == 409 and stopped.get_json()["type"].endswith("too-many-wrong-codes")


def test_many_people_racing_for_three_places_take_three(points, tokens):
    app = points.app(testing=True)
    with app.test_client() as client:
        activity = publish(client, tokens.header(ADMIN), places=3).get_json()["id"]
    statuses: list[int] = []

    def sign_up(i: int) -> None:
        with app.test_client() as c:
            statuses.append(c.post(f"/activities/{activity}/signups", headers=person(tokens, f"p{i}")).status_code)

    threads = [threading.Thread(target=sign_up, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [201] * 3 + [409] * 9
    with app.test_client() as client:
        seen = client.get(f"/activities/{activity}/signups", headers=tokens.header(ADMIN)).get_json()["items"]
        assert len(seen) == 3
        assert client.get(f"/activities/{activity}", headers=tokens.header(ADMIN)).get_json()["taken"] == 3


def test_bad_activities_are_refused(points, client, tokens):
    admin = tokens.header(ADMIN)
    now = datetime.now(UTC)
    base = {"title": "读书会", "places": 5, "starts_at": (now + timedelta(hours=1)).isoformat(),
            "ends_at": (now + timedelta(hours=2)).isoformat()}
    for body in (base | {"places": 0}, base | {"places": -1}, base | {"places": 2.5},
                 base | {"ends_at": base["starts_at"]}, base | {"starts_at": "2026-12-08T10:00:00"},
                 base | {"title": ""},
                 base | {"starts_at": (now - timedelta(hours=3)).isoformat(),
                         "ends_at": (now - timedelta(hours=2)).isoformat()}):
        assert client.post(f"/communities/{COMMUNITY}/activities", json=body, headers=admin).status_code == 422, body
    assert publish(client, tokens.header(OTHER_ADMIN)).status_code == 403
    assert publish(client, person(tokens, "resident")).status_code == 403
    assert client.post("/activities/not-an-id/signups", headers=person(tokens, "x")).status_code == 404
    assert client.post("/activities/00000000-0000-0000-0000-000000000000/signups",
                       headers=person(tokens, "x")).status_code == 404


def test_her_household_and_activities_are_in_her_download_and_erasure_drops_the_household(points, client, tokens):
    from .earning import GRID, bind, grid

    grid(points, GRID, COMMUNITY)
    bind(points, "dora", 61)
    made = publish(client, tokens.header(ADMIN)).get_json()
    client.post(f"/activities/{made['id']}/signups", headers=person(tokens, "dora"))
    mine = client.get("/me/personal-data", headers=person(tokens, "dora")).get_json()["data"]
    assert [h["household"] for h in mine["households"]] == ["61"]
    assert [(a["activity_id"], a["attended_at"]) for a in mine["activities"]] == [(made["id"], None)]
    with points.db.transaction() as session:
        points.spec.personal_data.erase(points, session, "dora", datetime.now(UTC))
    assert client.get("/me/personal-data", headers=person(tokens, "dora")).get_json()["data"]["households"] == []
