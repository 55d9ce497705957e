"""The clock: reminders at 80 %, escalation up the ladder, lights, extensions,
report-in and rating deadlines. Tests call the sweep with explicit times."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from dispatch.service import sweep_once
from dispatch.tables import Case
from dispatch.testing import NORTH, SW1, submit

from .conftest import events


def opened_at(client, as_, case_id) -> datetime:
    return datetime.fromisoformat(client.get(f"/cases/{case_id}", headers=as_("admin-county")).json["step_started_at"])


def test_an_unclaimed_case_is_reoffered_to_the_grid_head_then_climbs_the_ladder(dispatch, client, as_):
    case_id = submit(dispatch, SW1, claim_minutes=30)
    start = opened_at(client, as_, case_id)
    ladder = []
    for n in range(1, 6):
        sweep_once(dispatch, start + timedelta(minutes=31 * n))
        case = client.get(f"/cases/{case_id}", headers=as_("admin-county")).json
        ladder.append((case["level"], case["offered_to"]))
    assert ladder == [("grid", ["head-sw1"]), ("community", ["admin-west"]), ("street", ["admin-street"]),
                      ("county", ["admin-county"]), ("county", ["admin-county"])]  # the top stays put
    escalated = events(dispatch, "dispatch.case.escalated")
    assert [(e["from_level"], e["level"], e["reason"]) for e in escalated] == [
        ("grid", "grid", "claim_deadline"), ("grid", "community", "claim_deadline"),
        ("community", "street", "claim_deadline"), ("street", "county", "claim_deadline")]
    assert [e["division_code"] for e in escalated][1:] == ["DL-01-01", "DL-01", "DL"]
    missed = events(dispatch, "dispatch.deadline.missed")
    assert [e["step"] for e in missed] == ["claim"] * 5
    assert missed[0]["notify"] == ["head-sw1"] and missed[-1]["notify"] == ["admin-county"]
    # the worker who was passed over can no longer claim; the community admin it reached could have
    assert client.post(f"/cases/{case_id}/claim", headers=as_("worker-sw1-a")).status_code == 403
    assert client.post(f"/cases/{case_id}/claim", headers=as_("admin-county")).status_code == 201


def test_a_sweep_before_the_deadline_only_reminds_once_at_eighty_percent(dispatch, client, as_):
    case_id = submit(dispatch, SW1, claim_minutes=30)
    start = opened_at(client, as_, case_id)
    assert sweep_once(dispatch, start + timedelta(minutes=20))["approaching"] == 0
    assert sweep_once(dispatch, start + timedelta(minutes=25))["approaching"] == 1
    assert sweep_once(dispatch, start + timedelta(minutes=26))["approaching"] == 0
    reminder = events(dispatch, "dispatch.deadline.approaching")[0]
    assert (reminder["step"], reminder["notify"]) == ("claim", ["worker-sw1-a", "worker-sw1-b"])
    assert not events(dispatch, "dispatch.case.escalated")


def test_a_missed_handling_deadline_tells_the_community_and_the_handler(dispatch, client, as_):
    case_id = submit(dispatch, SW1, handle_hours=24)
    claimed = client.post(f"/cases/{case_id}/claim", headers=as_("worker-sw1-a")).json
    due = datetime.fromisoformat(claimed["step_due_at"])
    assert sweep_once(dispatch, due + timedelta(seconds=1))["escalated"] == 1
    missed = events(dispatch, "dispatch.deadline.missed")[0]
    assert (missed["step"], sorted(missed["notify"])) == ("handle", ["admin-west", "worker-sw1-a"])
    escalated = events(dispatch, "dispatch.case.escalated")[0]
    assert (escalated["from_level"], escalated["level"], escalated["reason"]) == ("grid", "community", "handle_deadline")
    case = client.get(f"/cases/{case_id}", headers=as_("worker-sw1-a")).json
    assert (case["state"], case["claimed_by"], case["level"]) == ("claimed", "worker-sw1-a", "community")
    assert sweep_once(dispatch, due + timedelta(hours=1))["missed"] == 0  # told once


def test_the_level_above_grants_more_time_and_the_deadline_moves(dispatch, client, as_):
    case_id = submit(dispatch, SW1, handle_hours=24)
    due = datetime.fromisoformat(client.post(f"/cases/{case_id}/claim", headers=as_("worker-sw1-a")).json["step_due_at"])
    asked = client.post(f"/cases/{case_id}/extension", json={"hours": 8, "reason": "waiting for parts"},
                        headers=as_("worker-sw1-a"))
    assert asked.status_code == 201 and asked.json["decision"] == "pending"
    twice = client.post(f"/cases/{case_id}/extension", json={"hours": 8, "reason": "again"}, headers=as_("worker-sw1-a"))
    assert twice.status_code == 409
    assert client.post(f"/cases/{case_id}/extension/decision", json={"approved": True},
                       headers=as_("worker-sw1-a")).status_code == 403
    assert client.post(f"/cases/{case_id}/extension/decision", json={"approved": True},
                       headers=as_("admin-east")).status_code == 403
    decided = client.post(f"/cases/{case_id}/extension/decision", json={"approved": True, "comment": "ok"},
                          headers=as_("admin-west"))
    assert decided.status_code == 200 and decided.json["decision"] == "approved"
    case = client.get(f"/cases/{case_id}", headers=as_("worker-sw1-a")).json
    assert datetime.fromisoformat(case["step_due_at"]) == due + timedelta(hours=8)
    kinds = [e["kind"] for e in events(dispatch, "dispatch.case.progressed")]
    assert kinds == ["extension_requested", "extension_approved"]
    assert sweep_once(dispatch, due + timedelta(hours=1))["missed"] == 0


def test_working_hour_deadlines_are_counted_in_working_hours(dispatch, client, as_):
    case_id = submit(dispatch, SW1, handle_hours=9, working_hours=True)
    case = client.post(f"/cases/{case_id}/claim", headers=as_("worker-sw1-a")).json
    started, due = datetime.fromisoformat(case["step_started_at"]), datetime.fromisoformat(case["step_due_at"])
    assert due - started >= timedelta(hours=9)  # nine working hours never fit in less wall time
    from dispatch.domain import NATIONAL, time_between
    assert time_between(started, due, working=NATIONAL) == timedelta(hours=9)


def test_every_case_view_shows_its_traffic_light_and_lists_filter_by_it(dispatch, client, as_):
    green, yellow, red = (submit(dispatch, SW1, claim_minutes=100) for _ in range(3))
    now = datetime.now(UTC)
    with dispatch.db.transaction() as session:
        for case_id, started in ((yellow, now - timedelta(minutes=85)), (red, now - timedelta(minutes=101))):
            session.execute(update(Case).where(Case.id == case_id).values(
                step_started_at=started, step_due_at=started + timedelta(minutes=100),
                yellow_at=started + timedelta(minutes=80)))
    admin = as_("admin-west")
    lights = {c: client.get(f"/cases/{c}", headers=admin).json["light"] for c in (green, yellow, red)}
    assert lights == {green: "green", yellow: "yellow", red: "red"}
    for light, expected in (("green", green), ("yellow", yellow), ("red", red)):
        listed = client.get(f"/cases?light={light}", headers=admin).json["items"]
        assert [c["id"] for c in listed] == [expected]
    assert [c["id"] for c in client.get("/cases?overdue=true", headers=admin).json["items"]] == [red]
    assert len(client.get("/cases?overdue=false", headers=admin).json["items"]) == 2


def test_a_department_that_misses_its_report_in_deadline_is_named(dispatch, client, as_):
    case_id = submit(dispatch, SW1)
    blown = client.post(f"/cases/{case_id}/whistle", json={"departments": ["police"], "report_in_hours": 2},
                        headers=as_("admin-street")).json
    due = datetime.fromisoformat(blown["report_in_due"])
    assert sweep_once(dispatch, due - timedelta(minutes=1))["report_in_missed"] == 0
    assert sweep_once(dispatch, due + timedelta(minutes=1))["report_in_missed"] == 1
    missed = [e for e in events(dispatch, "dispatch.deadline.missed") if e["step"] == "report_in"]
    assert [(e["department"], e["notify"]) for e in missed] == [("police", ["admin-street", "officer-police"])]
    assert sweep_once(dispatch, due + timedelta(hours=5))["report_in_missed"] == 0


def test_an_unrated_resolved_case_closes_with_rating_timeout_after_seven_days(dispatch, client, as_):
    case_id = submit(dispatch, SW1)
    client.post(f"/cases/{case_id}/claim", headers=as_("worker-sw1-a"))
    resolved = client.post(f"/cases/{case_id}/resolve", json={"result": "fixed"}, headers=as_("worker-sw1-a")).json
    at = datetime.fromisoformat(resolved["resolved_at"])
    assert sweep_once(dispatch, at + timedelta(days=6))["rating_timeout"] == 0
    assert sweep_once(dispatch, at + timedelta(days=7, seconds=1))["rating_timeout"] == 1
    case = client.get(f"/cases/{case_id}", headers=as_("worker-sw1-a")).json
    assert (case["state"], case["outcome"]) == ("closed", "rating_timeout")
    assert events(dispatch, "dispatch.case.closed")[0]["outcome"] == "rating_timeout"


def test_the_rating_wait_is_configurable(dispatch, client, as_):
    dispatch.extras["rating_days"] = 2
    case_id = submit(dispatch, NORTH)
    client.post(f"/cases/{case_id}/claim", headers=as_("admin-county"))
    resolved = client.post(f"/cases/{case_id}/resolve", json={"result": "done"}, headers=as_("admin-county")).json
    assert sweep_once(dispatch, datetime.fromisoformat(resolved["resolved_at"]) + timedelta(days=2, seconds=1)
                      )["rating_timeout"] == 1
