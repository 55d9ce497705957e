"""Routing from projections fed as events: the right grid of the right network, the
catch-all queue, approval first or automatic, one case per petition."""

import json

from contracts.grids import GRID_REDRAWN
from contracts.intake import PETITION_SUBMITTED
from dispatch.tables import Case
from dispatch.testing import EAST, NORTH, SW, SW1, feed, grid_data, petition, submit

from .conftest import count, events


def view(client, as_, case_id, user="admin-county"):
    answer = client.get(f"/cases/{case_id}", headers=as_(user))
    assert answer.status_code == 200, answer.json
    return answer.json


def test_a_petition_goes_to_the_deepest_grid_of_its_network_and_is_offered_to_its_workers(dispatch, client, as_):
    case = view(client, as_, submit(dispatch, SW1, network="security"))
    assert (case["grid_id"], case["state"], case["level"]) == (12, "offered", "grid")
    assert case["offered_to"] == ["worker-sw1-a", "worker-sw1-b"]
    assert (case["community"], case["street"], case["county"]) == ("DL-01-01", "DL-01", "DL")
    opened, assigned = events(dispatch, "dispatch.case.opened")[0], events(dispatch, "dispatch.case.assigned")[0]
    assert opened["catch_all"] is False and opened["needs_approval"] is False
    assert assigned["offered_to"] == ["worker-sw1-a", "worker-sw1-b"] and assigned["by"] is None


def test_the_same_place_routes_to_each_networks_own_grid(dispatch, client, as_):
    assert view(client, as_, submit(dispatch, SW1, network="urban"))["grid_id"] == 21
    assert view(client, as_, submit(dispatch, SW, network="security"))["grid_id"] == 11
    assert view(client, as_, submit(dispatch, EAST, network="security"))["grid_id"] == 13


def test_a_place_no_grid_of_the_network_covers_goes_to_the_county_catch_all_queue(dispatch, client, as_):
    for place, network in ((EAST, "urban"), (NORTH, "security")):
        case = view(client, as_, submit(dispatch, place, network=network))
        assert case["catch_all"] is True and case["grid_id"] is None
        assert (case["level"], case["state"], case["offered_to"]) == ("county", "offered", ["admin-county"])
    assert [e["catch_all"] for e in events(dispatch, "dispatch.case.opened")] == [True, True]
    assert view(client, as_, submit(dispatch, NORTH))["county"] == "DL"


def test_a_redrawn_grid_changes_routing_at_once(dispatch, client, as_):
    # U-W grows over the east community: the projection revision moves and the index rebuilds.
    feed(dispatch, GRID_REDRAWN, grid_data(21, "urban", "U-W", 1, None, (100.0, 25.0, 100.2, 25.1),
                                           division=(3, "DL-01-01", "community"), version=2))
    assert view(client, as_, submit(dispatch, EAST, network="urban"))["grid_id"] == 21


def test_one_case_per_petition_even_when_the_event_is_delivered_again(dispatch):
    data = petition()
    body = json.dumps({"specversion": "1.0", "id": "evt-1", "type": PETITION_SUBMITTED.type,
                       "source": "gridgov/intake", "time": "2025-01-01T00:00:00Z",
                       "data": PETITION_SUBMITTED.dump(data)})
    worker = dispatch.worker()
    queue = dispatch.spec.subscriptions.queues["dispatch.petitions"]
    assert worker.handle(queue, body, {}, {}) == "processed"
    assert worker.handle(queue, body, {}, {}) == "duplicate"
    feed(dispatch, PETITION_SUBMITTED, data)  # a replay under a new event id
    assert count(dispatch, Case) == 1


def test_a_community_requiring_approval_holds_the_case_until_its_admin_approves(dispatch, client, as_):
    answer = client.put("/communities/DL-01-01/settings", json={"approval_required": True, "review_required": False},
                        headers=as_("admin-west"))
    assert answer.status_code == 200 and answer.json["approval_required"] is True
    case_id = submit(dispatch, SW1)
    case = view(client, as_, case_id)
    assert (case["state"], case["offered_to"], case["step"]) == ("awaiting_approval", [], "approve")
    assert events(dispatch, "dispatch.case.opened")[0]["approvers"] == ["admin-west"]
    assert not events(dispatch, "dispatch.case.assigned")
    early = client.post(f"/cases/{case_id}/claim", headers=as_("worker-sw1-a"))
    assert early.status_code == 409 and "awaiting_approval" in early.json["detail"]
    assert client.post(f"/cases/{case_id}/approve", json={}, headers=as_("admin-east")).status_code == 403
    approved = client.post(f"/cases/{case_id}/approve", json={"reason": "ok"}, headers=as_("admin-west"))
    assert approved.status_code == 200, approved.json
    assert approved.json["state"] == "offered" and approved.json["offered_to"] == ["worker-sw1-a", "worker-sw1-b"]
    assert events(dispatch, "dispatch.case.assigned")[0]["by"] == "admin-west"
    # the east community still auto-assigns
    assert view(client, as_, submit(dispatch, EAST))["state"] == "offered"


def test_an_admin_may_approve_the_case_into_another_grid_of_the_network(dispatch, client, as_):
    client.put("/communities/DL-01-01/settings", json={"approval_required": True, "review_required": False},
               headers=as_("admin-west"))
    case_id = submit(dispatch, SW1)
    moved = client.post(f"/cases/{case_id}/approve", json={"grid_id": 11}, headers=as_("admin-west"))
    assert moved.status_code == 200 and (moved.json["grid_id"], moved.json["offered_to"]) == (11, ["worker-sw"])
    wrong = submit(dispatch, SW1)
    refused = client.post(f"/cases/{wrong}/approve", json={"grid_id": 21}, headers=as_("admin-west"))
    assert refused.status_code == 409 and "not a current grid of the security network" in refused.json["detail"]


def test_only_the_communitys_admin_or_a_county_admin_sets_its_dispatch_settings(client, as_):
    body = {"approval_required": False, "review_required": True}
    assert client.put("/communities/DL-01-01/settings", json=body, headers=as_("admin-east")).status_code == 403
    assert client.put("/communities/DL-01-01/settings", json=body, headers=as_("admin-street")).status_code == 403
    assert client.put("/communities/DL-01-01/settings", json=body, headers=as_("admin-county")).status_code == 200
    assert client.put("/communities/DL-01/settings", json=body, headers=as_("admin-county")).status_code == 404
    assert client.put("/communities/DL-01-01/settings", json=body | {"extra": 1},
                      headers=as_("admin-county")).status_code == 422
    assert client.get("/communities/DL-01-01/settings", headers=as_("admin-west")).json["review_required"] is True


def test_a_patrol_note_closed_on_the_spot_is_a_closed_case(dispatch, client, as_):
    case = view(client, as_, submit(dispatch, SW1, channel="patrol", submitted_by="worker-sw1-a",
                                    closed_on_spot=True))
    assert (case["state"], case["outcome"], case["claimed_by"]) == ("closed", "on_spot", "worker-sw1-a")
    assert events(dispatch, "dispatch.case.closed")[0]["outcome"] == "on_spot"


def test_an_anonymous_reporter_is_hidden_from_staff(dispatch, client, as_):
    assert view(client, as_, submit(dispatch, SW1, anonymous=True))["reporter_id"] is None
