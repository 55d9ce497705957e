"""Someone leaves (identity.user.disabled): their offers are withdrawn, every case they held
goes back to its grid head, whatever order identity's and grids' events arrive in; a
redelivery or a replay changes nothing, and a case never waits on somebody who left."""

from datetime import UTC, datetime, timedelta

import pytest

from contracts.grids import STAFF_ASSIGNED, STAFF_UNASSIGNED
from contracts.identity import ROLE_REVOKED, USER_DISABLED, USER_ENABLED
from contracts.intake import PETITION_REOPENED
from dispatch.service import sweep_once
from dispatch.tables import Case, Transition
from dispatch.testing import EPOCH, SW1, feed, submit
from gridkit.events import Envelope

from .conftest import count, events

# dispatch.testing.STAFF, numbered from 1 as seed_world feeds it
ASSIGNMENT = {"worker-sw1-a": 1, "worker-sw1-b": 2, "head-sw1": 3}


def disabled(dispatch, user: str, at: datetime | None = None, *, envelope: Envelope | None = None) -> str:
    data = {"user_id": user, "kind": "staff", "by": "admin-county", "at": at or datetime.now(UTC)}
    return feed(dispatch, USER_DISABLED, data, subject=user, queue="dispatch.roles", envelope=envelope)


def unassigned(dispatch, user: str, grid: int = 12, role: str = "grid_worker") -> str:
    return feed(dispatch, STAFF_UNASSIGNED, {
        "assignment_id": ASSIGNMENT[user], "grid_id": grid, "network": "security", "building_id": None,
        "user_id": user, "role": role, "since": EPOCH, "until": datetime.now(UTC)})


def revoked(dispatch, user: str, role: str, scope: str, grant_id: int = 900) -> str:
    return feed(dispatch, ROLE_REVOKED, {"grant_id": grant_id, "user_id": user, "role": role, "scope": scope,
                                         "by": "admin-county"})


def case(client, as_, case_id: str) -> dict:
    return client.get(f"/cases/{case_id}", headers=as_("admin-county")).json


def claimed_by(dispatch, client, as_, user: str) -> str:
    case_id = submit(dispatch, SW1)
    assert client.post(f"/cases/{case_id}/claim", headers=as_(user)).status_code == 201
    return case_id


def test_a_leavers_offers_are_withdrawn_and_the_case_they_claimed_goes_to_the_grid_head(dispatch, client, as_):
    offered = submit(dispatch, SW1)
    held = claimed_by(dispatch, client, as_, "worker-sw1-a")
    claim_due_before = case(client, as_, held)["step_due_at"]
    assert disabled(dispatch, "worker-sw1-a") == "processed"

    # still offered to the colleague: the offer to the leaver is simply gone
    still = case(client, as_, offered)
    assert (still["state"], still["offered_to"]) == ("offered", ["worker-sw1-b"])
    assert still["transitions"][-1]["action"] == "withdraw_offers"

    # the claimed case is with the grid head, on a fresh claim clock, with the reason
    back = case(client, as_, held)
    assert (back["state"], back["claimed_by"], back["offered_to"], back["level"]) == (
        "offered", None, ["head-sw1"], "grid")
    assert back["step"] == "claim" and back["step_due_at"] != claim_due_before
    hand_back = back["transitions"][-1]
    assert (hand_back["action"], hand_back["from_state"], hand_back["to_state"]) == ("hand_back", "claimed", "offered")
    assert "the handler left" in hand_back["reason"] and "grid heads" in hand_back["reason"]
    [event] = events(dispatch, "dispatch.case.handed_back")
    assert (event["case_id"], event["handler"], event["reason"], event["offered_to"]) == (
        held, "worker-sw1-a", "handler_left", ["head-sw1"])

    # the grid head takes it (or reassigns it); the leaver can no longer be offered anything
    assert client.post(f"/cases/{held}/claim", headers=as_("head-sw1")).status_code == 201
    fresh = submit(dispatch, SW1)
    assert case(client, as_, fresh)["offered_to"] == ["worker-sw1-b"]


def test_a_case_offered_only_to_people_who_left_goes_up_to_the_grid_head(dispatch, client, as_):
    case_id = submit(dispatch, SW1)
    disabled(dispatch, "worker-sw1-a")
    disabled(dispatch, "worker-sw1-b")
    now_with = case(client, as_, case_id)
    assert (now_with["state"], now_with["offered_to"], now_with["level"]) == ("offered", ["head-sw1"], "grid")
    [event] = events(dispatch, "dispatch.case.handed_back")
    assert (event["handler"], event["reason"], event["offered_to"]) == (None, "offers_withdrawn", ["head-sw1"])


def test_when_the_grid_head_leaves_their_case_goes_to_the_next_rung_up(dispatch, client, as_):
    held = claimed_by(dispatch, client, as_, "head-sw1")
    offered_to_head = submit(dispatch, SW1)
    disabled(dispatch, "worker-sw1-a")
    disabled(dispatch, "worker-sw1-b")  # the offer climbs to the grid head …
    assert case(client, as_, offered_to_head)["offered_to"] == ["head-sw1"]

    disabled(dispatch, "head-sw1")  # … who leaves too
    for case_id in (held, offered_to_head):
        now_with = case(client, as_, case_id)
        assert (now_with["state"], now_with["offered_to"], now_with["level"]) == (
            "offered", ["admin-west"], "community"), case_id


ORDERS = {
    "identity's order": ("revoked", "disabled", "unassigned"),
    "staffing first": ("unassigned", "revoked", "disabled"),
    "disabled last": ("revoked", "unassigned", "disabled"),
    "disabled first": ("disabled", "unassigned", "revoked"),
}


@pytest.mark.parametrize("order", ORDERS.values(), ids=ORDERS.keys())
def test_the_outcome_is_the_same_whichever_order_the_events_arrive_in(dispatch, client, as_, order):
    offered = submit(dispatch, SW1)
    held = claimed_by(dispatch, client, as_, "worker-sw1-a")
    steps = {"revoked": lambda: revoked(dispatch, "worker-sw1-a", "grid_worker", "grid:12"),
             "unassigned": lambda: unassigned(dispatch, "worker-sw1-a"),
             "disabled": lambda: disabled(dispatch, "worker-sw1-a")}
    for step in order:
        assert steps[step]() == "processed"
    assert case(client, as_, offered)["offered_to"] == ["worker-sw1-b"]
    back = case(client, as_, held)
    assert (back["state"], back["claimed_by"], back["offered_to"]) == ("offered", None, ["head-sw1"])
    assert len(events(dispatch, "dispatch.case.handed_back")) == 1
    assert case(client, as_, submit(dispatch, SW1))["offered_to"] == ["worker-sw1-b"]


def test_a_redelivery_or_a_replay_of_the_disable_changes_nothing(dispatch, client, as_):
    held = claimed_by(dispatch, client, as_, "worker-sw1-a")
    at = datetime.now(UTC)
    envelope = Envelope.new(USER_DISABLED, {"user_id": "worker-sw1-a", "kind": "staff", "by": "admin-county",
                                            "at": at}, subject="worker-sw1-a")
    assert disabled(dispatch, "worker-sw1-a", envelope=envelope) == "processed"
    written = (count(dispatch, Transition), len(events(dispatch)))
    assert disabled(dispatch, "worker-sw1-a", envelope=envelope) == "duplicate"
    assert disabled(dispatch, "worker-sw1-a", at) == "processed"  # the same fact under a new event id
    assert (count(dispatch, Transition), len(events(dispatch))) == written
    assert case(client, as_, held)["offered_to"] == ["head-sw1"]


def test_rework_or_a_claim_reaching_someone_who_left_is_handed_back_by_the_sweep(dispatch, client, as_):
    held = claimed_by(dispatch, client, as_, "worker-sw1-a")
    resolved = client.post(f"/cases/{held}/resolve", json={"result": "drain cleared"}, headers=as_("worker-sw1-a"))
    assert resolved.json["state"] == "resolved"
    disabled(dispatch, "worker-sw1-a")
    # the resident asks for rework after the handler left: back with the handler who left …
    feed(dispatch, PETITION_REOPENED, {"petition_id": resolved.json["petition_id"], "reporter_id": "resident-1",
                                       "reason": "still blocked", "at": datetime.now(UTC)})
    assert case(client, as_, held)["state"] == "reopened"
    # … and a grid head's grant in a token still valid for a second lets a claim slip in
    offered = submit(dispatch, SW1)
    disabled(dispatch, "head-sw1")
    assert client.post(f"/cases/{offered}/claim", headers=as_("head-sw1")).status_code == 201

    done = sweep_once(dispatch, datetime.now(UTC))
    assert done["handed_back"] == 2
    assert case(client, as_, held)["offered_to"] == ["admin-west"]  # no grid head any more: the community
    assert case(client, as_, offered)["offered_to"] == ["admin-west"]
    assert sweep_once(dispatch, datetime.now(UTC))["handed_back"] == 0


def test_enabled_again_and_staffed_anew_a_person_is_offered_cases_again(dispatch, client, as_):
    at = datetime.now(UTC)
    disabled(dispatch, "worker-sw1-a", at)
    unassigned(dispatch, "worker-sw1-a")
    feed(dispatch, USER_ENABLED, {"user_id": "worker-sw1-a", "kind": "staff", "by": "admin-county",
                                  "at": at + timedelta(seconds=5)}, queue="dispatch.roles")
    assert case(client, as_, submit(dispatch, SW1))["offered_to"] == ["worker-sw1-b"]
    feed(dispatch, STAFF_ASSIGNED, {"assignment_id": 100, "grid_id": 12, "network": "security",
                                    "building_id": None, "user_id": "worker-sw1-a", "role": "grid_worker",
                                    "since": at + timedelta(seconds=6), "until": None})
    assert case(client, as_, submit(dispatch, SW1))["offered_to"] == ["worker-sw1-a", "worker-sw1-b"]
    # an older disable arriving after the enable changes nothing
    assert disabled(dispatch, "worker-sw1-a", at - timedelta(minutes=1)) == "processed"
    assert case(client, as_, submit(dispatch, SW1))["offered_to"] == ["worker-sw1-a", "worker-sw1-b"]


def test_a_leaving_handlers_pending_extension_request_goes_with_them(dispatch, client, as_):
    held = claimed_by(dispatch, client, as_, "worker-sw1-a")
    assert client.post(f"/cases/{held}/extension", json={"hours": 4, "reason": "waiting for parts"},
                       headers=as_("worker-sw1-a")).status_code == 201
    disabled(dispatch, "worker-sw1-a")
    assert [e["decision"] for e in case(client, as_, held)["extensions"]] == ["withdrawn"]
    assert client.post(f"/cases/{held}/claim", headers=as_("head-sw1")).status_code == 201
    assert client.post(f"/cases/{held}/extension", json={"hours": 4, "reason": "waiting for parts"},
                       headers=as_("head-sw1")).status_code == 201
    with dispatch.db.sessions() as session:
        assert session.get(Case, held).claimed_by == "head-sw1"
