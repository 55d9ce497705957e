"""Queues and lists scoped by role, cursor pages, and the 三率 from a known set of cases."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from contracts.intake import PETITION_RATED
from dispatch.tables import Case
from dispatch.testing import EAST, NORTH, SW, SW1, feed, submit


@pytest.fixture
def spread(dispatch, client, as_):
    """Cases in S-W-1, S-W, the urban west grid, the east, the catch-all; one whistled to the police."""
    ids = {"sw1": submit(dispatch, SW1), "sw": submit(dispatch, SW), "urban": submit(dispatch, SW1, network="urban"),
           "east": submit(dispatch, EAST), "north": submit(dispatch, NORTH)}
    client.post(f"/cases/{ids['east']}/whistle", json={"departments": ["police"], "report_in_hours": 4},
                headers=as_("admin-east"))
    return ids


def listed(client, headers, query="") -> set[str]:
    answer = client.get(f"/cases{query}", headers=headers)
    assert answer.status_code == 200, answer.json
    return {case["id"] for case in answer.json["items"]}


def test_each_role_lists_only_the_cases_in_its_scope(client, as_, spread):
    s = spread
    assert listed(client, as_("worker-sw1-a")) == {s["sw1"]}
    assert listed(client, as_("head-sw")) == {s["sw1"], s["sw"]}  # a grid's subtree
    assert listed(client, as_("worker-uw")) == {s["urban"]}
    assert listed(client, as_("admin-west")) == {s["sw1"], s["sw"], s["urban"]}
    assert listed(client, as_("admin-east")) == {s["east"]}
    assert listed(client, as_("admin-street")) == {s["sw1"], s["sw"], s["urban"], s["east"]}
    assert listed(client, as_("officer-police")) == {s["east"]}  # whistled to them
    assert listed(client, as_("officer-urban")) == set()
    assert listed(client, as_("admin-county")) == set(s.values())


def test_a_case_outside_your_scope_is_forbidden_to_read(client, as_, spread):
    assert client.get(f"/cases/{spread['east']}", headers=as_("worker-sw1-a")).status_code == 403
    assert client.get(f"/cases/{spread['sw1']}", headers=as_("officer-police")).status_code == 403
    assert client.get(f"/cases/{spread['east']}", headers=as_("officer-police")).status_code == 200


def test_lists_filter_by_grid_state_and_network(client, as_, spread):
    admin = as_("admin-county")
    assert listed(client, admin, "?grid=12") == {spread["sw1"]}
    assert listed(client, admin, "?network=urban") == {spread["urban"]}
    assert listed(client, admin, "?level=county") == {spread["north"]}
    client.post(f"/cases/{spread['sw1']}/claim", headers=as_("worker-sw1-a"))
    assert listed(client, admin, "?state=claimed") == {spread["sw1"]}


def test_my_queue_holds_what_is_offered_to_me_and_what_i_claimed(client, as_, spread):
    worker = as_("worker-sw1-a")
    assert [c["id"] for c in client.get("/cases/queue", headers=worker).json["items"]] == [spread["sw1"]]
    client.post(f"/cases/{spread['sw1']}/claim", headers=as_("worker-sw1-b"))
    assert client.get("/cases/queue", headers=worker).json["items"] == []
    mine = client.get("/cases/queue?which=claimed", headers=as_("worker-sw1-b")).json["items"]
    assert [c["id"] for c in mine] == [spread["sw1"]]
    assert client.get("/cases/queue?which=offered", headers=as_("worker-sw1-b")).json["items"] == []


def test_pages_follow_the_cursor_without_repeats(dispatch, client, as_):
    opened = [submit(dispatch, SW1) for _ in range(5)]
    seen, cursor = [], None
    while True:
        answer = client.get("/cases?limit=2" + (f"&cursor={cursor}" if cursor else ""), headers=as_("admin-west")).json
        seen += [c["id"] for c in answer["items"]]
        cursor = answer["next_cursor"]
        if not cursor:
            break
    assert seen == opened  # oldest first, each once


def test_figures_give_the_three_rates_median_claim_time_and_overdue_count(dispatch, client, as_):
    in_time, late, waiting, east, north = (submit(dispatch, p) for p in (SW1, SW1, SW1, EAST, NORTH))
    for case_id in (in_time, late):
        client.post(f"/cases/{case_id}/claim", headers=as_("worker-sw1-a"))
    client.post(f"/cases/{east}/claim", headers=as_("worker-se"))
    past = datetime.now(UTC) - timedelta(hours=1)
    with dispatch.db.transaction() as session:
        # `late` was first offered two hours ago with a 30-minute claim deadline; `waiting` is overdue.
        session.execute(update(Case).where(Case.id == late).values(
            first_offered_at=past - timedelta(hours=1), first_claim_due=past - timedelta(minutes=30)))
        session.execute(update(Case).where(Case.id == waiting).values(step_due_at=past))
    blown = client.post(f"/cases/{in_time}/whistle", json={"departments": ["police"], "report_in_hours": 4},
                        headers=as_("admin-west")).json
    for case_id, rating in ((in_time, 5), (late, 2)):
        client.post(f"/cases/{case_id}/resolve", json={"result": "done"}, headers=as_("worker-sw1-a"))
        petition = client.get(f"/cases/{case_id}", headers=as_("admin-west")).json["petition_id"]
        feed(dispatch, PETITION_RATED, {"petition_id": petition, "reporter_id": "resident-1", "rating": rating,
                                        "at": datetime.now(UTC)})
    client.post(f"/cases/{in_time}/whistles/{blown['id']}/score", json={"department": "police", "score": 4},
                headers=as_("admin-west"))

    by_grid = {row["key"]: row for row in client.get("/figures?by=grid", headers=as_("admin-county")).json["rows"]}
    west = by_grid["12"]
    assert {k: west[k] for k in ("opened", "offered", "claimed_in_time", "response_rate", "resolved",
                                 "resolution_rate", "rated", "satisfied", "satisfaction_rate", "overdue")} == {
        "opened": 3, "offered": 3, "claimed_in_time": 1, "response_rate": 0.3333, "resolved": 2,
        "resolution_rate": 0.6667, "rated": 2, "satisfied": 1, "satisfaction_rate": 0.5, "overdue": 1}
    assert 3600 < west["median_claim_seconds"] < 7300  # median of ~0 s and ~2 h
    assert (by_grid["13"]["response_rate"], by_grid["13"]["resolution_rate"]) == (1.0, 0.0)
    assert by_grid["catch-all"]["opened"] == 1 and by_grid["catch-all"]["claimed_in_time"] == 0
    by_community = client.get("/figures?by=community", headers=as_("admin-county")).json["rows"]
    assert {row["key"]: row["opened"] for row in by_community} == {"DL-01-01": 3, "DL-01-02": 1, "none": 1}
    police = client.get("/figures?by=department", headers=as_("admin-county")).json["rows"]
    assert [(r["key"], r["opened"], r["satisfaction_rate"], r["mean_score"]) for r in police] == [
        ("police", 1, 1.0, 4.0)]
    scoped = client.get("/figures?by=grid", headers=as_("admin-east")).json["rows"]
    assert [row["key"] for row in scoped] == ["13"]
    assert client.get("/figures?by=street", headers=as_("admin-county")).status_code == 422


def test_claims_and_escalations_are_counted_in_prometheus_without_ids(dispatch, client, as_):
    case_id = submit(dispatch, SW1)
    client.post(f"/cases/{case_id}/claim", headers=as_("worker-sw1-a"))
    client.post(f"/cases/{case_id}/claim", headers=as_("worker-sw1-b"))
    text = client.get("/metrics").get_data(as_text=True)
    assert 'gridgov_dispatch_claims_total{outcome="won"}' in text
    assert 'gridgov_dispatch_claims_total{outcome="conflict"}' in text
    assert case_id not in text and "worker-sw1" not in text
