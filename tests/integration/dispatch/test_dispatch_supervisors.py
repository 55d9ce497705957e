"""Supervisors move stuck cases: reassign to another worker in scope, and 督办 (flag for
supervision: one rung up, a deadline, the handler told)."""

from datetime import UTC, datetime, timedelta

import pytest

from contracts.identity import USER_DISABLED
from dispatch.service import sweep_once
from dispatch.tables import Transition, outbox
from dispatch.testing import EAST, SW1, feed, submit

from .conftest import count, events


def claimed(dispatch, client, as_, user: str = "worker-sw1-a", at=SW1) -> str:
    case_id = submit(dispatch, at)
    assert client.post(f"/cases/{case_id}/claim", headers=as_(user)).status_code == 201
    return case_id


def written(dispatch) -> tuple[int, int]:
    return count(dispatch, Transition), count(dispatch, outbox.table)


# --------------------------------------------------------------------------
# reassign
# --------------------------------------------------------------------------


def test_the_grid_head_reassigns_a_claimed_case_to_a_colleague_who_keeps_its_clock(dispatch, client, as_):
    case_id = claimed(dispatch, client, as_)
    due = client.get(f"/cases/{case_id}", headers=as_("head-sw1")).json["step_due_at"]
    answer = client.post(f"/cases/{case_id}/reassign", json={"to": "worker-sw1-b", "reason": "a is on sick leave"},
                         headers=as_("head-sw1"))
    assert answer.status_code == 200, answer.json
    assert (answer.json["state"], answer.json["claimed_by"], answer.json["step_due_at"]) == (
        "claimed", "worker-sw1-b", due)
    last = answer.json["transitions"][-1]
    assert (last["action"], last["by"], last["reason"]) == ("reassign", "head-sw1", "a is on sick leave")
    [event] = events(dispatch, "dispatch.case.reassigned")
    assert (event["by"], event["from_handler"], event["to_handler"], event["reason"]) == (
        "head-sw1", "worker-sw1-a", "worker-sw1-b", "a is on sick leave")
    # the new handler handles it; the old one no longer may
    assert client.post(f"/cases/{case_id}/resolve", json={"result": "x"}, headers=as_("worker-sw1-a")).status_code == 403
    assert client.post(f"/cases/{case_id}/resolve", json={"result": "done"},
                       headers=as_("worker-sw1-b")).status_code == 200


def test_a_community_admin_gives_an_unclaimed_or_returned_case_to_a_worker_of_another_grid(dispatch, client, as_):
    offered = submit(dispatch, SW1)
    answer = client.post(f"/cases/{offered}/reassign", json={"to": "worker-sw", "reason": "knows the building"},
                         headers=as_("admin-west"))
    assert answer.status_code == 200, answer.json
    assert (answer.json["state"], answer.json["claimed_by"], answer.json["step"]) == ("claimed", "worker-sw", "handle")
    assert answer.json["grid_id"] == 12  # the case stays where it is

    returned = claimed(dispatch, client, as_)
    assert client.post(f"/cases/{returned}/return", json={"reason": "not mine"},
                       headers=as_("worker-sw1-a")).status_code == 200
    again = client.post(f"/cases/{returned}/reassign", json={"to": "head-sw1", "reason": "the head takes it"},
                        headers=as_("admin-west"))
    assert (again.status_code, again.json["state"], again.json["claimed_by"]) == (200, "claimed", "head-sw1")
    [_, second] = events(dispatch, "dispatch.case.reassigned")
    assert (second["from_handler"], second["to_handler"]) == (None, "head-sw1")


@pytest.mark.parametrize(("who", "to", "status", "detail"), [
    ("worker-sw1-b", "worker-sw1-b", 403, None),  # a worker is no supervisor
    ("head-se", "worker-sw1-b", 403, "supervisors"),  # the grid head of another grid
    ("admin-east", "worker-sw1-b", 403, "supervisors"),  # the admin of another community
    ("head-sw1", "worker-se", 403, "no grid you supervise"),  # a target outside the head's grid
    ("admin-west", "worker-se", 403, "no grid you supervise"),  # … outside the community
    ("head-sw1", "admin-west", 422, "not a grid worker"),  # no grid staff at all
    ("head-sw1", "nobody-at-all", 422, "not a grid worker"),
    ("head-sw1", "worker-sw1-a", 409, "already handles"),
])
def test_a_reassignment_out_of_scope_or_to_no_worker_is_refused_and_changes_nothing(
        dispatch, client, as_, who, to, status, detail):
    case_id = claimed(dispatch, client, as_)
    before = written(dispatch)
    answer = client.post(f"/cases/{case_id}/reassign", json={"to": to, "reason": "try"}, headers=as_(who))
    assert answer.status_code == status, answer.json
    assert answer.json["status"] == status and answer.json["detail"]
    if detail:
        assert detail in answer.json["detail"] or detail in str(answer.json.get("errors")), answer.json
    if status == 422:
        assert "to" in answer.json["errors"]
    assert written(dispatch) == before
    assert client.get(f"/cases/{case_id}", headers=as_("admin-county")).json["claimed_by"] == "worker-sw1-a"


def test_a_disabled_worker_or_a_closed_case_cannot_be_reassigned(dispatch, client, as_):
    case_id = claimed(dispatch, client, as_)
    feed(dispatch, USER_DISABLED, {"user_id": "worker-sw1-b", "kind": "staff", "by": "admin-county",
                                   "at": datetime.now(UTC)}, queue="dispatch.roles")
    refused = client.post(f"/cases/{case_id}/reassign", json={"to": "worker-sw1-b", "reason": "try"},
                          headers=as_("head-sw1"))
    assert refused.status_code == 422 and refused.json["errors"]["to"] == ["the account is disabled"]
    client.post(f"/cases/{case_id}/resolve", json={"result": "done"}, headers=as_("worker-sw1-a"))
    late = client.post(f"/cases/{case_id}/reassign", json={"to": "worker-sw", "reason": "try"},
                       headers=as_("admin-west"))
    assert late.status_code == 409 and late.json["state"] == "resolved"
    assert client.post(f"/cases/{case_id}/reassign", json={"to": "worker-sw"},
                       headers=as_("admin-west")).status_code == 422  # a reason is required


# --------------------------------------------------------------------------
# 督办
# --------------------------------------------------------------------------


def test_a_supervised_case_rises_one_level_with_a_deadline_and_its_handler_is_told(dispatch, client, as_):
    case_id = claimed(dispatch, client, as_)
    before = datetime.now(UTC)
    answer = client.post(f"/cases/{case_id}/supervise", json={"hours": 4, "reason": "third complaint this week"},
                         headers=as_("admin-west"))
    assert answer.status_code == 200, answer.json
    body = answer.json
    assert (body["state"], body["level"], body["step"], body["supervised_by"]) == (
        "claimed", "community", "handle", "admin-west")
    due = datetime.fromisoformat(body["step_due_at"])
    assert before + timedelta(hours=4) <= due <= datetime.now(UTC) + timedelta(hours=4)
    last = body["transitions"][-1]
    assert (last["action"], last["by"], last["level"]) == ("supervise", "admin-west", "community")
    assert "third complaint" in last["reason"]
    [event] = events(dispatch, "dispatch.case.escalated")
    assert (event["reason"], event["from_level"], event["level"], event["by"], event["text"]) == (
        "manual", "grid", "community", "admin-west", "third complaint this week")
    assert event["offered_to"] == [] and event["division_code"] == "DL-01-01"
    assert "worker-sw1-a" in event["notify"] and datetime.fromisoformat(event["due"]) == due

    # shown as supervised in lists and figures
    listed = client.get("/cases", query_string={"supervised": "true"}, headers=as_("admin-west")).json["items"]
    assert [c["id"] for c in listed] == [case_id]
    claimed(dispatch, client, as_)
    assert client.get("/cases", query_string={"supervised": "false"},
                      headers=as_("admin-west")).json["items"][0]["id"] != case_id
    [row] = client.get("/figures", query_string={"by": "community"}, headers=as_("admin-west")).json["rows"]
    assert (row["opened"], row["supervised"]) == (2, 1)

    # the supervision's deadline missed: the sweep climbs it again, as any handling deadline
    assert sweep_once(dispatch, due + timedelta(seconds=1))["escalated"] == 1
    escalated = events(dispatch, "dispatch.case.escalated")
    assert [(e["reason"], e["level"]) for e in escalated] == [("manual", "community"), ("handle_deadline", "street")]


def test_a_supervised_unclaimed_case_is_offered_one_level_up_with_the_deadline(dispatch, client, as_):
    case_id = submit(dispatch, SW1)
    answer = client.post(f"/cases/{case_id}/supervise", json={"hours": 2, "reason": "nobody moves"},
                         headers=as_("admin-street"))
    assert answer.status_code == 200, answer.json
    assert (answer.json["state"], answer.json["level"], answer.json["offered_to"], answer.json["step"]) == (
        "offered", "community", ["admin-west"], "claim")
    [event] = events(dispatch, "dispatch.case.escalated")
    assert (event["reason"], event["offered_to"], event["notify"]) == ("manual", ["admin-west"], [])


def test_only_a_supervisor_other_than_the_handler_flags_an_open_case(dispatch, client, as_):
    case_id = claimed(dispatch, client, as_, "head-sw1")
    body = {"hours": 4, "reason": "late"}
    before = written(dispatch)
    assert client.post(f"/cases/{case_id}/supervise", json=body, headers=as_("head-sw1")).status_code == 403
    assert client.post(f"/cases/{case_id}/supervise", json=body, headers=as_("worker-sw1-a")).status_code == 403
    assert client.post(f"/cases/{case_id}/supervise", json=body, headers=as_("admin-east")).status_code == 403
    for bad in ({"hours": 0, "reason": "late"}, {"hours": 721, "reason": "late"}, {"hours": 4}):
        assert client.post(f"/cases/{case_id}/supervise", json=bad, headers=as_("admin-west")).status_code == 422
    assert written(dispatch) == before
    client.post(f"/cases/{case_id}/resolve", json={"result": "done"}, headers=as_("head-sw1"))
    refused = client.post(f"/cases/{case_id}/supervise", json=body, headers=as_("admin-west"))
    assert refused.status_code == 409 and "supervision" in refused.json["detail"]


def test_the_grid_head_of_a_parent_grid_supervises_and_reassigns_below_it(dispatch, client, as_):
    case_id = claimed(dispatch, client, as_)  # on S-W-1, a sub-grid of S-W
    assert client.post(f"/cases/{case_id}/reassign", json={"to": "worker-sw", "reason": "help"},
                       headers=as_("head-sw")).status_code == 200
    assert client.post(f"/cases/{case_id}/supervise", json={"hours": 8, "reason": "follow up"},
                       headers=as_("head-sw")).status_code == 200
    other = claimed(dispatch, client, as_, "worker-se", EAST)
    assert client.post(f"/cases/{other}/supervise", json={"hours": 8, "reason": "x"},
                       headers=as_("head-sw")).status_code == 403
