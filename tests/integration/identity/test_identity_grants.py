"""Who may grant what, and at which scope."""

from __future__ import annotations

import pytest
from conftest import new_phone


@pytest.mark.parametrize("granter, role, scope, status", [
    (("sysadmin", "county"), "sysadmin", "county", 201),
    (("county_admin", "county"), "street_admin", "grid:s1", 201),
    (("county_admin", "county"), "sysadmin", "county", 403),
    (("community_admin", "grid:c1"), "grid_worker", "grid:c1", 201),
    (("community_admin", "grid:c1"), "building_manager", "grid:c1", 201),
    (("community_admin", "grid:c1"), "grid_worker", "grid:c2", 403),
    (("community_admin", "grid:c1"), "community_admin", "grid:c1", 403),
    (("street_admin", "grid:s1"), "grid_head", "grid:s1", 201),
    (("street_admin", "grid:s1"), "dept_officer", "department:water", 403),
    (("street_admin", "grid:s1"), "volunteer", "county", 403),
    (("grid_head", "grid:s1"), "grid_worker", "grid:s1", 403),
])
def test_granting_follows_role_and_scope(client, people, granter, role, scope, status):
    _, header = people.with_role(*granter)
    someone = people.add()
    response = client.post(f"/users/{someone}/grants", headers=header, json={"role": role, "scope": scope})
    assert response.status_code == status, response.json


def test_a_grid_admin_cannot_revoke_grants_outside_their_scope(client, people):
    _, admin = people.with_role("community_admin", "grid:c1")
    _, county = people.with_role("county_admin")
    someone = people.add()
    elsewhere = client.post(f"/users/{someone}/grants", headers=county,
                            json={"role": "grid_worker", "scope": "grid:c2"}).json
    assert client.delete(f"/users/{someone}/grants/{elsewhere['id']}", headers=admin).status_code == 403
    assert client.get(f"/users/{someone}/grants", headers=admin).json[0]["scope"] == "grid:c2"


def test_a_grid_admin_creates_staff_only_within_their_scope(client, people):
    _, admin = people.with_role("street_admin", "grid:s1")

    def create(kind, grants):
        return client.post("/users", headers=admin, json={"kind": kind, "name": "新人", "phone": new_phone(),
                                                          "grants": grants}).status_code

    assert create("staff", [{"role": "grid_worker", "scope": "grid:s1"}]) == 201
    assert create("staff", [{"role": "grid_worker", "scope": "grid:s2"}]) == 403
    assert create("staff", []) == 403
    assert create("dept_officer", [{"role": "grid_worker", "scope": "grid:s1"}]) == 403


def test_granting_twice_is_a_conflict_and_unknown_targets_are_404(client, people):
    _, admin = people.with_role("county_admin")
    someone = people.add()
    body = {"role": "volunteer", "scope": "grid:1"}
    assert client.post(f"/users/{someone}/grants", headers=admin, json=body).status_code == 201
    assert client.post(f"/users/{someone}/grants", headers=admin, json=body).status_code == 409
    assert client.post("/users/nobody/grants", headers=admin, json=body).status_code == 404
    assert client.delete(f"/users/{someone}/grants/999999", headers=admin).status_code == 404
    assert client.get("/users/" + "x" * 500, headers=admin).status_code == 404


@pytest.mark.parametrize("body", [{"role": "emperor", "scope": "county"}, {"role": "grid_worker", "scope": "grid:"},
                                  {"role": "grid_worker", "scope": "galaxy:1"}, {"role": "grid_worker"}])
def test_malformed_grants_are_422(client, people, body):
    _, admin = people.with_role("sysadmin")
    assert client.post(f"/users/{people.add()}/grants", headers=admin, json=body).status_code == 422
