"""Role × endpoint: every route's role gate for the ten roles and no token; and
the scope of what an approver may choose (the grid a case is sent to).

Bodies are deliberately invalid, so a role past the gate gets 422 (the gate runs
before the body is read) and one stopped at it 403; no token is 401."""

import pytest

from dispatch.testing import SW1, submit

from .conftest import events

ROLES = {  # role → (grants, user id)
    "resident": ([("resident", "county")], "resident-1"),
    "grid_worker": ([("grid_worker", "grid:12")], "worker-sw1-a"),
    "grid_head": ([("grid_head", "grid:12")], "head-sw1"),
    "community_admin": ([("community_admin", "division:DL-01-01")], "admin-west"),
    "street_admin": ([("street_admin", "division:DL-01")], "admin-street"),
    "county_admin": ([("county_admin", "county")], "admin-county"),
    "dept_officer": ([("dept_officer", "department:police")], "officer-police"),
    "volunteer": ([("volunteer", "county")], "volunteer-1"),
    "building_manager": ([("building_manager", "grid:12")], "manager-1"),
    "sysadmin": ([("sysadmin", "county")], "sysadmin-1"),
}
STAFF = {"grid_worker", "grid_head", "community_admin", "street_admin", "county_admin", "dept_officer"}
ADMINS = {"community_admin", "street_admin", "county_admin"}
DISPATCHERS = {"community_admin", "county_admin"}
OFFICERS = {"dept_officer"}

BODY_ROUTES = [  # (method, path, roles past the gate)
    ("post", "/cases/{id}/approve", DISPATCHERS),
    ("post", "/cases/{id}/notes", STAFF),
    ("post", "/cases/{id}/extension", STAFF),
    ("post", "/cases/{id}/extension/decision", ADMINS),
    ("post", "/cases/{id}/return", STAFF),
    ("post", "/cases/{id}/resolve", STAFF),
    ("post", "/cases/{id}/review", DISPATCHERS),
    ("post", "/cases/{id}/whistle", ADMINS),
    ("post", "/cases/{id}/whistles/w/report-in", OFFICERS),
    ("post", "/cases/{id}/whistles/w/handling", OFFICERS),
    ("post", "/cases/{id}/whistles/w/score", ADMINS),
    ("post", "/cases/{id}/consultations", ADMINS),
    ("put", "/communities/DL-01-01/settings", DISPATCHERS),
    ("get", "/cases?bogus=1", STAFF),
    ("get", "/cases/queue?bogus=1", STAFF),
    ("get", "/figures?bogus=1", STAFF),
]


@pytest.fixture
def case_id(dispatch):
    return submit(dispatch, SW1)


@pytest.mark.parametrize("role", [*ROLES, None])
def test_every_route_lets_in_only_its_roles(role, client, tokens, case_id):
    headers = {} if role is None else tokens.header(*ROLES[role][0], sub=ROLES[role][1])
    for method, path, allowed in BODY_ROUTES:
        answer = getattr(client, method)(path.format(id=case_id), json={"bogus": 1}, headers=headers)
        expected = 401 if role is None else 422 if role in allowed else 403
        assert answer.status_code == expected, (role, method, path, answer.json)
        assert answer.headers["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("role", [*ROLES, None])
def test_reading_and_claiming_a_case_follow_role_and_scope(role, client, tokens, case_id):
    headers = {} if role is None else tokens.header(*ROLES[role][0], sub=ROLES[role][1])
    read = client.get(f"/cases/{case_id}", headers=headers).status_code
    settings = client.get("/communities/DL-01-01/settings", headers=headers).status_code
    claim = client.post(f"/cases/{case_id}/claim", headers=headers).status_code
    if role is None:
        assert (read, settings, claim) == (401, 401, 401)
        return
    # the case sits in grid 12 of community DL-01-01; the police were not whistled
    readers = {"grid_worker", "grid_head", "community_admin", "street_admin", "county_admin"}
    assert read == (200 if role in readers else 403), role
    assert settings == (200 if role in {"community_admin", "county_admin"} else 403), role
    claimers = {"grid_worker": 201, "grid_head": 201}  # offered to the workers; the head may take it
    assert claim == claimers.get(role, 403), role


# --------------------------------------------------------------------------
# where an approver may send a case: only into a grid of their own scope
# --------------------------------------------------------------------------

def awaiting_approval(dispatch, client, as_, place=SW1, community="DL-01-01", admin="admin-west") -> str:
    client.put(f"/communities/{community}/settings", json={"approval_required": True, "review_required": False},
               headers=as_(admin))
    return submit(dispatch, place)


def unchanged(dispatch, client, as_, case_id, state, grid_id):
    case = client.get(f"/cases/{case_id}", headers=as_("admin-county")).json
    assert (case["state"], case["grid_id"], case["offered_to"]) == (state, grid_id, [])
    assert case["transitions"][-1]["action"] != "offer"
    assert not [e for e in events(dispatch, "dispatch.case.assigned") if e["case_id"] == case_id and e["by"]]


def test_a_community_admin_cannot_approve_a_case_into_another_communitys_grid(dispatch, client, as_):
    case_id = awaiting_approval(dispatch, client, as_)
    moved = client.post(f"/cases/{case_id}/approve", json={"grid_id": 13}, headers=as_("admin-west"))
    assert moved.status_code == 403, moved.json
    assert moved.headers["Content-Type"] == "application/problem+json"
    assert "grid 13" in moved.json["detail"]
    unchanged(dispatch, client, as_, case_id, "awaiting_approval", 12)
    # the east community's admin may not pull it over either, nor approve it at all
    assert client.post(f"/cases/{case_id}/approve", json={"grid_id": 13},
                       headers=as_("admin-east")).status_code == 403
    unchanged(dispatch, client, as_, case_id, "awaiting_approval", 12)


def test_a_returned_case_cannot_be_sent_out_of_the_approvers_community(dispatch, client, as_):
    case_id = submit(dispatch, SW1)
    assert client.post(f"/cases/{case_id}/claim", headers=as_("worker-sw1-a")).status_code == 201
    client.post(f"/cases/{case_id}/return", json={"reason": "east side"}, headers=as_("worker-sw1-a"))
    assert client.post(f"/cases/{case_id}/approve", json={"grid_id": 13},
                       headers=as_("admin-west")).status_code == 403
    case = client.get(f"/cases/{case_id}", headers=as_("admin-county")).json
    assert (case["state"], case["grid_id"], case["community"]) == ("returned", 12, "DL-01-01")
    # the county admin may send it anywhere in the county
    moved = client.post(f"/cases/{case_id}/approve", json={"grid_id": 13}, headers=as_("admin-county"))
    assert moved.status_code == 200, moved.json
    assert (moved.json["grid_id"], moved.json["community"], moved.json["offered_to"]) == (13, "DL-01-02", ["worker-se"])


def test_a_grid_scoped_approver_sends_cases_only_within_their_grid_subtree(dispatch, client, as_, tokens):
    case_id = awaiting_approval(dispatch, client, as_)
    approver = tokens.header(("community_admin", "grid:11"), sub="admin-grid-11")
    assert client.post(f"/cases/{case_id}/approve", json={"grid_id": 13}, headers=approver).status_code == 403
    unchanged(dispatch, client, as_, case_id, "awaiting_approval", 12)
    moved = client.post(f"/cases/{case_id}/approve", json={"grid_id": 11}, headers=approver)
    assert moved.status_code == 200 and (moved.json["grid_id"], moved.json["offered_to"]) == (11, ["worker-sw"])
