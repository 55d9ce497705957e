"""Role × endpoint: every route's role gate for the ten roles and no token.

Bodies are deliberately invalid, so a role past the gate gets 422 (the gate runs
before the body is read) and one stopped at it 403; no token is 401."""

import pytest

from dispatch.testing import SW1, submit

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
