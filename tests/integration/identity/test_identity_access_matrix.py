"""Every protected endpoint × every role: allowed (2xx) or forbidden (403); no token → 401.

Each caller holds one role at a typical scope; grid-scoped roles sit on grid:g1, and
the requests that grant or create act on grid:g1 too, so a grid admin acts within
their own scope (scope refusals are tested in test_identity_grants.py).
"""

from __future__ import annotations

import pytest
from conftest import People, ask_code, new_phone, register

from gridkit.auth import ROLES
from gridkit.config import Settings
from gridkit.service import Runtime
from identity.service import spec

PASSWORD = "correct horse battery"
SCOPE = {"resident": "county", "county_admin": "county", "sysadmin": "county",
         "dept_officer": "department:water"}
ADMINS = {"community_admin", "street_admin", "county_admin", "sysadmin"}
ALL = set(ROLES)


@pytest.fixture(scope="module")
def world(fresh_pg_database, tmp_path_factory):
    """One runtime for the whole matrix (a fresh database per case would take minutes)."""
    runtime = Runtime.build(spec, Settings(service="identity", database_url=fresh_pg_database("identity"),
                                           data_dir=tmp_path_factory.mktemp("identity")), migrate=True)
    yield runtime, runtime.app(testing=True).test_client(), People(runtime)
    runtime.db.dispose()


def target(people):
    """A staff member on grid:g1 whom the request acts on; returns (user id, grant id)."""
    user_id = people.add(("grid_worker", "grid:g1"))
    with people.runtime.db.transaction() as session:
        from identity.tables import User

        return user_id, session.get(User, user_id).grants[0].id


# (name, allowed roles, request(client, target id, grant id) -> response)
ENDPOINTS = [
    ("GET /me", ALL, lambda c, h, t, g: c.get("/me", headers=h)),
    ("PUT /me/password", ALL, lambda c, h, t, g: c.put(
        "/me/password", headers=h, json={"current_password": PASSWORD, "password": "a new good one"})),
    ("GET /users", ADMINS, lambda c, h, t, g: c.get("/users", headers=h)),
    ("GET /users/<id>", ADMINS, lambda c, h, t, g: c.get(f"/users/{t}", headers=h)),
    ("GET /users/<id>/grants", ADMINS, lambda c, h, t, g: c.get(f"/users/{t}/grants", headers=h)),
    ("GET /users/<id>/contact", {"county_admin", "community_admin"}, lambda c, h, t, g: c.get(
        f"/users/{t}/contact", headers=h, query_string={"reason": "matrix test"})),
    ("POST /users", ADMINS, lambda c, h, t, g: c.post("/users", headers=h, json={
        "kind": "staff", "name": "新网格员", "phone": new_phone(),
        "grants": [{"role": "grid_worker", "scope": "grid:g1"}]})),
    ("POST /users/<id>/grants", ADMINS, lambda c, h, t, g: c.post(
        f"/users/{t}/grants", headers=h, json={"role": "grid_head", "scope": "grid:g1"})),
    ("DELETE /users/<id>/grants/<grant>", ADMINS, lambda c, h, t, g: c.delete(
        f"/users/{t}/grants/{g}", headers=h)),
    ("PUT /users/<id>/password", {"county_admin", "sysadmin"}, lambda c, h, t, g: c.put(
        f"/users/{t}/password", headers=h, json={"password": PASSWORD})),
    ("POST /service-accounts", {"sysadmin"}, lambda c, h, t, g: c.post(
        "/service-accounts", headers=h, json={"name": "城管系统"})),
    ("POST /keys/rotate", {"sysadmin"}, lambda c, h, t, g: c.post("/keys/rotate", headers=h)),
    ("GET /me/personal-data", ALL, lambda c, h, t, g: c.get("/me/personal-data", headers=h)),
    ("POST /me/erasure", {"resident"}, lambda c, h, t, g: c.post(
        "/me/erasure", headers=h, json={"password": PASSWORD})),
    ("POST /users/<id>/erasure", {"county_admin", "sysadmin"}, lambda c, h, t, g: c.post(
        f"/users/{t}/erasure", headers=h, json={"reason": "asked in person, ID seen"})),
]
PUBLIC = [
    ("POST /codes", lambda c, h: ask_code(c, new_phone(), headers=h)),
    ("POST /residents", lambda c, h: register(c, {"phone": new_phone(), "name": "居民", "password": PASSWORD},
                                              headers=h)),
    ("POST /password-reset", lambda c, h: c.post("/password-reset", headers=h, json={
        "phone": new_phone(), "code": "123456", "password": PASSWORD})),  # 422 = answered, not refused
    ("POST /tokens/revoke", lambda c, h: c.post("/tokens/revoke", headers=h, json={"refresh_token": "x"})),
    ("GET /.well-known/jwks.json", lambda c, h: c.get("/.well-known/jwks.json", headers=h)),
    ("POST /tokens", lambda c, h: c.post("/tokens", headers=h, json={
        "grant_type": "refresh_token", "refresh_token": "unknown"})),  # 401 = answered, not refused
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name, allowed, call", ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_role_may_or_may_not_use_endpoint(world, role, name, allowed, call):
    _, client, people = world
    caller = people.add((role, SCOPE.get(role, "grid:g1")), password=PASSWORD,
                        kind="resident" if role == "resident" else "staff")
    user_id, grant_id = target(people)
    response = call(client, people.header(caller), user_id, grant_id)
    if role in allowed:
        assert 200 <= response.status_code < 300, (name, role, response.json)
    else:
        assert response.status_code == 403, (name, role, response.status_code)


@pytest.mark.parametrize("name, allowed, call", ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_endpoint_without_a_token_is_401(world, name, allowed, call):
    _, client, people = world
    user_id, grant_id = target(people)
    assert call(client, {}, user_id, grant_id).status_code == 401


@pytest.mark.parametrize("role", [None, *ROLES])
@pytest.mark.parametrize("name, call", PUBLIC, ids=[p[0] for p in PUBLIC])
def test_public_endpoint_answers_anyone(world, role, name, call):
    _, client, people = world
    header = people.with_role(role, SCOPE.get(role, "grid:g1"))[1] if role else {}
    response = call(client, header)
    expected = {"POST /tokens": 401, "POST /password-reset": 422}.get(name)
    assert response.status_code == expected if expected else 200 <= response.status_code < 300
