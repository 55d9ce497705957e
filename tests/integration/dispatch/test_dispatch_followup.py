"""吹哨报到, 会商, 赋分, and the resident's side: rating, rework, withdrawal, merging, review."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from contracts.intake import PETITION_MERGED, PETITION_RATED, PETITION_REOPENED, PETITION_WITHDRAWN
from dispatch.tables import Summons
from dispatch.testing import SW1, feed, submit

from .conftest import events


def handled(dispatch, client, as_, **petition) -> dict:
    case_id = submit(dispatch, SW1, **petition)
    assert client.post(f"/cases/{case_id}/claim", headers=as_("worker-sw1-a")).status_code == 201
    return client.get(f"/cases/{case_id}", headers=as_("worker-sw1-a")).json


def resident(case: dict, **data) -> dict:
    return {"petition_id": case["petition_id"], "reporter_id": "resident-1", "at": datetime.now(UTC)} | data


def test_whistled_departments_report_in_on_time_or_late_consult_and_are_scored(dispatch, client, as_):
    case = handled(dispatch, client, as_)
    url = f"/cases/{case['id']}"
    assert client.post(f"{url}/whistle", json={"departments": ["police"], "report_in_hours": 2},
                       headers=as_("worker-sw1-a")).status_code == 403
    assert client.post(f"{url}/whistle", json={"departments": ["police"], "report_in_hours": 2},
                       headers=as_("admin-east")).status_code == 403
    blown = client.post(f"{url}/whistle", json={"departments": ["police", "urban_mgmt"], "report_in_hours": 2,
                                                "reason": "illegal construction"}, headers=as_("admin-street"))
    assert blown.status_code == 201, blown.json
    wid = blown.json["id"]
    whistled = events(dispatch, "dispatch.case.whistled")[0]
    assert (whistled["departments"], whistled["by"]) == (["police", "urban_mgmt"], "admin-street")
    # the police report in on time; urban management after the deadline
    assert client.post(f"{url}/whistles/{wid}/report-in", json={}, headers=as_("officer-police")).json["late"] is False
    with dispatch.db.transaction() as session:
        session.execute(update(Summons).where(Summons.department == "urban_mgmt")
                        .values(report_in_due=datetime.now(UTC) - timedelta(minutes=1)))
    late = client.post(f"{url}/whistles/{wid}/report-in", json={}, headers=as_("officer-urban"))
    assert late.status_code == 200 and late.json["late"] is True
    assert client.post(f"{url}/whistles/{wid}/report-in", json={}, headers=as_("officer-urban")).status_code == 409
    assert [(e["department"], e["late"]) for e in events(dispatch, "dispatch.case.reported_in")] == [
        ("police", False), ("urban_mgmt", True)]
    handling = client.post(f"{url}/whistles/{wid}/handling", json={"text": "patrol posted"},
                           headers=as_("officer-police"))
    assert handling.status_code == 200 and handling.json["handling"] == "patrol posted"
    # 会商
    meeting = client.post(f"{url}/consultations", headers=as_("admin-street"), json={
        "held_on": "2025-03-01", "attendees": ["admin-street", "officer-police", "officer-urban", "物业公司"],
        "decisions": [{"decision": "remove the shed", "owner": "urban_mgmt"},
                      {"decision": "mediate with the neighbour", "owner": "police"}]})
    assert meeting.status_code == 201 and meeting.json["decisions"][0]["owner"] == "urban_mgmt"
    # 赋分 only once the case is done
    too_soon = client.post(f"{url}/whistles/{wid}/score", json={"department": "police", "score": 5},
                           headers=as_("admin-west"))
    assert too_soon.status_code == 409 and "after the case is resolved" in too_soon.json["detail"]
    client.post(f"{url}/resolve", json={"result": "shed removed"}, headers=as_("worker-sw1-a"))
    feed(dispatch, PETITION_RATED, resident(case, rating=5))
    for department, mark in (("police", 5), ("urban_mgmt", 2)):
        scored = client.post(f"{url}/whistles/{wid}/score", json={"department": department, "score": mark},
                             headers=as_("admin-west"))
        assert scored.status_code == 200 and scored.json["score"] == mark
    assert client.post(f"{url}/whistles/{wid}/score", json={"department": "police", "score": 1},
                       headers=as_("admin-west")).status_code == 409
    assert client.post(f"{url}/whistles/{wid}/score", json={"department": "police", "score": 6},
                       headers=as_("admin-west")).status_code == 422
    detail = client.get(url, headers=as_("officer-police")).json  # the officer sees what was whistled to them
    assert [(d["department"], d["score"]) for d in detail["whistles"][0]["departments"]] == [
        ("police", 5), ("urban_mgmt", 2)]
    assert detail["consultations"][0]["attendees"][-1] == "物业公司"


def test_only_an_officer_of_a_whistled_department_reports_in(dispatch, client, as_, tokens):
    case = handled(dispatch, client, as_)
    wid = client.post(f"/cases/{case['id']}/whistle", json={"departments": ["police"], "report_in_hours": 2},
                      headers=as_("admin-west")).json["id"]
    answer = client.post(f"/cases/{case['id']}/whistles/{wid}/report-in", json={}, headers=as_("officer-urban"))
    assert answer.status_code == 403
    assert client.post(f"/cases/{case['id']}/whistles/nope/report-in", json={},
                       headers=as_("officer-police")).status_code == 404
    assert client.post(f"/cases/{case['id']}/whistles/{wid}/handling", json={"text": "x"},
                       headers=as_("officer-police")).status_code == 409  # report in first


def test_resolve_then_the_residents_rating_closes_the_case(dispatch, client, as_):
    case = handled(dispatch, client, as_)
    resolved = client.post(f"/cases/{case['id']}/resolve", json={"result": "drain cleared"},
                           headers=as_("worker-sw1-a"))
    assert resolved.json["state"] == "resolved"
    assert events(dispatch, "dispatch.case.resolved")[0]["result"] == "drain cleared"
    feed(dispatch, PETITION_RATED, resident(case, rating=4))
    closed = client.get(f"/cases/{case['id']}", headers=as_("worker-sw1-a")).json
    assert (closed["state"], closed["outcome"], closed["rating"]) == ("closed", "rated", 4)
    assert events(dispatch, "dispatch.case.closed")[0] | {"at": None} == events(
        dispatch, "dispatch.case.closed")[0] | {"at": None, "outcome": "rated", "rating": 4}
    assert [t["to_state"] for t in closed["transitions"]] == ["offered", "claimed", "resolved", "closed"]


def test_rework_reopens_the_case_to_the_same_handler(dispatch, client, as_):
    case = handled(dispatch, client, as_)
    client.post(f"/cases/{case['id']}/resolve", json={"result": "patched"}, headers=as_("worker-sw1-a"))
    feed(dispatch, PETITION_RATED, resident(case, rating=1))
    feed(dispatch, PETITION_REOPENED, resident(case, reason="still leaking"))
    reopened = client.get(f"/cases/{case['id']}", headers=as_("worker-sw1-a")).json
    assert (reopened["state"], reopened["claimed_by"], reopened["step"]) == ("reopened", "worker-sw1-a", "handle")
    assert events(dispatch, "dispatch.case.reopened")[0]["reason"] == "still leaking"
    assert reopened["transitions"][-1]["reason"] == "still leaking"
    queue = client.get("/cases/queue?which=claimed", headers=as_("worker-sw1-a")).json["items"]
    assert [c["id"] for c in queue] == [case["id"]]
    again = client.post(f"/cases/{case['id']}/resolve", json={"result": "pipe replaced"}, headers=as_("worker-sw1-a"))
    assert again.status_code == 200 and again.json["state"] == "resolved"


def test_a_petition_is_withdrawn_only_while_its_case_is_unclaimed(dispatch, client, as_):
    unclaimed = client.get(f"/cases/{submit(dispatch, SW1)}", headers=as_("admin-west")).json
    feed(dispatch, PETITION_WITHDRAWN, resident(unclaimed))
    withdrawn = client.get(f"/cases/{unclaimed['id']}", headers=as_("admin-west")).json
    assert (withdrawn["state"], withdrawn["outcome"]) == ("closed", "withdrawn")
    assert client.post(f"/cases/{unclaimed['id']}/claim", headers=as_("worker-sw1-a")).status_code == 409
    claimed = handled(dispatch, client, as_)
    assert feed(dispatch, PETITION_WITHDRAWN, resident(claimed)) == "processed"  # acked, not retried
    assert client.get(f"/cases/{claimed['id']}", headers=as_("admin-west")).json["state"] == "claimed"
    assert [e["case_id"] for e in events(dispatch, "dispatch.case.closed")] == [unclaimed["id"]]


def test_a_merged_duplicate_is_closed_as_merged(dispatch, client, as_):
    kept, duplicate = (client.get(f"/cases/{submit(dispatch, SW1)}", headers=as_("admin-west")).json for _ in range(2))
    feed(dispatch, PETITION_MERGED, resident(duplicate, into_petition_id=kept["petition_id"], by="admin-west"))
    merged = client.get(f"/cases/{duplicate['id']}", headers=as_("admin-west")).json
    assert (merged["state"], merged["outcome"]) == ("closed", "merged")
    assert kept["petition_id"] in merged["transitions"][-1]["reason"]


def test_a_community_requiring_review_checks_the_result_before_the_resident_is_told(dispatch, client, as_):
    client.put("/communities/DL-01-01/settings", json={"approval_required": False, "review_required": True},
               headers=as_("admin-west"))
    case = handled(dispatch, client, as_)
    url = f"/cases/{case['id']}"
    assert client.post(f"{url}/resolve", json={"result": "done?"}, headers=as_("worker-sw1-a")).json["state"] == "reviewing"
    assert not events(dispatch, "dispatch.case.resolved")
    assert client.post(f"{url}/review", json={"approved": True}, headers=as_("admin-east")).status_code == 403
    sent_back = client.post(f"{url}/review", json={"approved": False, "comment": "photos missing"},
                            headers=as_("admin-west"))
    assert sent_back.json["state"] == "claimed" and sent_back.json["transitions"][-1]["reason"] == "photos missing"
    client.post(f"{url}/notes", json={"text": "photos attached", "photos": ["p-1", "p-2"]}, headers=as_("worker-sw1-a"))
    client.post(f"{url}/resolve", json={"result": "done, with photos"}, headers=as_("worker-sw1-a"))
    approved = client.post(f"{url}/review", json={"approved": True}, headers=as_("admin-west"))
    assert approved.json["state"] == "resolved" and approved.json["notes"][0]["photos"] == ["p-1", "p-2"]
    assert events(dispatch, "dispatch.case.resolved")[0]["by"] == "worker-sw1-a"


def test_a_returned_case_goes_back_to_the_dispatcher_who_reassigns_it(dispatch, client, as_):
    case = handled(dispatch, client, as_)
    url = f"/cases/{case['id']}"
    returned = client.post(f"{url}/return", json={"reason": "this is the east side's drain"},
                           headers=as_("worker-sw1-a"))
    assert (returned.json["state"], returned.json["claimed_by"], returned.json["step"]) == ("returned", None, "approve")
    assert events(dispatch, "dispatch.case.progressed")[-1]["kind"] == "returned"
    reassigned = client.post(f"{url}/approve", json={"grid_id": 11}, headers=as_("admin-west"))
    assert (reassigned.json["state"], reassigned.json["offered_to"]) == ("offered", ["worker-sw"])


def test_a_withdrawal_that_overtakes_its_submission_is_retried_until_the_case_exists(dispatch, client, as_):
    # A retry, or worker processes scaled out, can reorder a queue: a follow-up may arrive first.
    from contracts.intake import PETITION_SUBMITTED
    from dispatch.testing import petition

    data = petition(SW1)
    early = resident({"petition_id": data["petition_id"]})
    assert feed(dispatch, PETITION_WITHDRAWN, early) == "retried"
    feed(dispatch, PETITION_SUBMITTED, data, subject=data["petition_id"])
    assert feed(dispatch, PETITION_WITHDRAWN, early) == "processed"
    closed = [e for e in events(dispatch, "dispatch.case.closed") if e["petition_id"] == data["petition_id"]]
    assert [e["outcome"] for e in closed] == ["withdrawn"]
