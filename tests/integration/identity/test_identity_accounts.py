"""Registration, login, refresh rotation, logout, service accounts and validation."""

from __future__ import annotations

import json

import jwt
import pytest
from conftest import ask_code, national_id, new_phone, texted_code
from conftest import register as register_with_code
from sqlalchemy import text

PASSWORD = "correct horse battery"


def register(client, phone=None, **extra):
    body = {"phone": phone or new_phone(), "name": "王小明", "password": PASSWORD} | extra
    response = register_with_code(client, body)
    assert response.status_code == 201, response.json
    return response.json


def login(client, phone, password=PASSWORD, **environ):
    return client.post("/tokens", json={"grant_type": "password", "phone": phone, "password": password},
                       environ_base=environ)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_a_resident_registers_logs_in_and_sees_their_own_unmasked_profile(client):
    phone = new_phone()
    registered = register(client, phone, national_id=national_id())
    assert registered["phone"] == phone  # they see their own data
    assert [g["role"] for g in registered["grants"]] == ["resident"]

    tokens = login(client, phone).json
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 600
    header = jwt.get_unverified_header(tokens["access_token"])
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert header["alg"] == "EdDSA" and header["typ"] == "at+jwt" and header["kid"]
    assert claims["sub"] == registered["id"] and claims["kind"] == "user" and claims["name"] == "王小明"
    assert claims["grants"] == [{"role": "resident", "scope": "county"}]
    assert {"iss", "aud", "iat", "exp", "jti"} <= set(claims)

    me = client.get("/me", headers=bearer(tokens["access_token"])).json
    assert me["phone"] == phone and me["national_id"] == national_id()


def test_a_wrong_password_and_an_unknown_phone_get_the_same_401(client):
    phone = new_phone()
    register(client, phone)
    wrong = login(client, phone, "not the password")
    unknown = login(client, new_phone())
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json["detail"] == unknown.json["detail"]
    assert wrong.content_type == "application/problem+json"


def test_refresh_rotates_the_token_and_the_old_one_stops_working(client):
    phone = new_phone()
    register(client, phone)
    first = login(client, phone).json
    second = client.post("/tokens", json={"grant_type": "refresh_token",
                                          "refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    assert second.json["refresh_token"] != first["refresh_token"]
    assert client.get("/me", headers=bearer(second.json["access_token"])).status_code == 200


def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(client):
    phone = new_phone()
    register(client, phone)
    first = login(client, phone).json
    second = client.post("/tokens", json={"grant_type": "refresh_token",
                                          "refresh_token": first["refresh_token"]}).json
    replay = client.post("/tokens", json={"grant_type": "refresh_token",
                                          "refresh_token": first["refresh_token"]})
    assert replay.status_code == 401 and "reuse" in replay.json["detail"]
    # The legitimate holder's newer token died with the family.
    after = client.post("/tokens", json={"grant_type": "refresh_token",
                                         "refresh_token": second["refresh_token"]})
    assert after.status_code == 401
    # A separate login is a separate family and still works.
    assert login(client, phone).status_code == 200


def test_logout_revokes_the_refresh_token(client):
    phone = new_phone()
    register(client, phone)
    tokens = login(client, phone).json
    assert client.post("/tokens/revoke", json={"refresh_token": tokens["refresh_token"]}).status_code == 204
    again = client.post("/tokens", json={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert again.status_code == 401
    # Revoking an unknown token is not an error (RFC 7009) and reveals nothing.
    assert client.post("/tokens/revoke", json={"refresh_token": "nonsense"}).status_code == 204


def test_refresh_picks_up_grants_changed_since_login(client, people):
    staff = people.add(("grid_worker", "grid:1"), password=PASSWORD, phone=(phone := new_phone()))
    tokens = login(client, phone).json
    _, admin = people.with_role("county_admin")
    assert client.post(f"/users/{staff}/grants", json={"role": "grid_head", "scope": "grid:1"},
                       headers=admin).status_code == 201
    refreshed = client.post("/tokens", json={"grant_type": "refresh_token",
                                             "refresh_token": tokens["refresh_token"]}).json
    claims = jwt.decode(refreshed["access_token"], options={"verify_signature": False})
    assert {"role": "grid_head", "scope": "grid:1"} in claims["grants"]


def test_a_service_account_gets_tokens_with_client_credentials_only(client, people):
    _, root = people.with_role("sysadmin")
    created = client.post("/service-accounts", headers=root, json={
        "name": "水务局系统", "grants": [{"role": "dept_officer", "scope": "department:water"}]})
    assert created.status_code == 201
    account = created.json
    answer = client.post("/tokens", json={"grant_type": "client_credentials", "client_id": account["client_id"],
                                          "client_secret": account["client_secret"]})
    assert answer.status_code == 200 and "refresh_token" not in answer.json
    claims = jwt.decode(answer.json["access_token"], options={"verify_signature": False})
    assert claims["kind"] == "service"
    assert claims["grants"] == [{"role": "dept_officer", "scope": "department:water"}]
    assert client.post("/tokens", json={"grant_type": "client_credentials", "client_id": account["client_id"],
                                        "client_secret": "wrong"}).status_code == 401
    # The secret is not a password: the password grant refuses service accounts.
    assert client.post("/tokens", json={"grant_type": "password", "username": account["client_id"],
                                        "password": account["client_secret"]}).status_code == 401


def test_staff_created_without_a_password_cannot_log_in_until_an_admin_sets_one(client, people):
    _, admin = people.with_role("county_admin")
    phone = new_phone()
    created = client.post("/users", headers=admin, json={
        "kind": "staff", "name": "李网格", "phone": phone, "grants": [{"role": "grid_worker", "scope": "grid:9"}]})
    assert created.status_code == 201 and created.json["can_log_in"] is False
    assert login(client, phone, "anything-at-all").status_code == 401
    assert client.put(f"/users/{created.json['id']}/password", headers=admin,
                      json={"password": PASSWORD}).status_code == 204
    assert login(client, phone).status_code == 200


def test_staff_log_in_by_username_and_change_their_own_password(client, people):
    _, admin = people.with_role("county_admin")
    created = client.post("/users", headers=admin, json={
        "kind": "dept_officer", "name": "赵科员", "username": "zhao.water", "password": PASSWORD,
        "grants": [{"role": "dept_officer", "scope": "department:water"}]}).json
    tokens = client.post("/tokens", json={"grant_type": "password", "username": "zhao.water",
                                          "password": PASSWORD}).json
    change = client.put("/me/password", headers=bearer(tokens["access_token"]),
                        json={"current_password": PASSWORD, "password": "another fine secret"})
    assert change.status_code == 204
    # Changing the password ends the other sessions.
    assert client.post("/tokens", json={"grant_type": "refresh_token",
                                        "refresh_token": tokens["refresh_token"]}).status_code == 401
    assert created["username"] == "zhao.water"


def test_a_phone_that_got_an_account_after_its_code_was_sent_is_a_409_problem(client, people):
    # Only the phone's owner holds the code, so the clear answer tells nobody else anything.
    phone = new_phone()
    assert ask_code(client, phone).status_code == 202
    code = texted_code(client, phone, "register")
    people.add(("resident", "county"), kind="resident", phone=phone)
    again = client.post("/residents", json={"phone": phone, "code": code, "name": "另一个人", "password": PASSWORD})
    assert again.status_code == 409
    assert again.content_type == "application/problem+json"
    assert phone not in again.get_data(as_text=True)


@pytest.mark.parametrize("body, field", [
    ({"phone": "12812345678", "name": "x", "password": PASSWORD}, "phone"),
    ({"phone": "1381234567", "name": "x", "password": PASSWORD}, "phone"),
    ({"phone": "13812345678", "name": "x" * 51, "password": PASSWORD}, "name"),
    ({"phone": "13812345678", "name": "x", "password": "short"}, "password"),
    ({"phone": "13812345678", "name": "x", "password": "1234567890"}, "password"),
    ({"phone": "13812345678", "name": "x", "password": PASSWORD, "national_id": "110105194912310021"}, "national_id"),
    ({"phone": "13812345678", "name": "x", "password": PASSWORD, "national_id": "1" * 5000}, "national_id"),
    ({"phone": "13812345678", "name": "x", "password": PASSWORD, "role": "sysadmin"}, "role"),
    ({"phone": ["13812345678"], "name": "x", "password": PASSWORD}, "phone"),
    ({"phone": "13812345678", "name": "x", "password": PASSWORD}, "code"),
    ({"phone": "13812345678", "name": "x", "password": PASSWORD, "code": "12345"}, "code"),
    ({"phone": "13812345678", "name": "x", "password": PASSWORD, "code": "12345a"}, "code"),
])
def test_bad_registrations_are_422_problems_naming_the_field(client, body, field):
    response = client.post("/residents", json={"code": "123456"} | body)
    assert response.status_code == 422
    assert field in response.json["errors"]


@pytest.mark.parametrize("body", [
    {"grant_type": "magic"},
    {"grant_type": "password", "password": PASSWORD},
    {"grant_type": "password", "phone": "13812345678", "username": "x", "password": PASSWORD},
    {"grant_type": "refresh_token"},
    {"grant_type": "client_credentials", "client_id": "svc"},
    {"grant_type": "password", "phone": "1" * 10_000, "password": PASSWORD},
    {"grant_type": "otp", "phone": "13812345678"},
    {"grant_type": "otp", "code": "123456"},
    {"grant_type": "otp", "phone": "13812345678", "code": "1234567"},
])
def test_malformed_token_requests_are_422_not_500(client, body):
    assert client.post("/tokens", json=body).status_code == 422


def test_a_body_that_is_not_json_is_a_client_error(client):
    response = client.post("/residents", data="not json", content_type="application/json")
    assert 400 <= response.status_code < 500


def test_users_are_listed_with_a_cursor_and_filtered_by_kind(client, people):
    _, admin = people.with_role("county_admin")
    for _ in range(5):
        register(client)
    seen, cursor = [], None
    while True:
        query = {"kind": "resident", "limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/users", headers=admin, query_string=query).json
        seen += [u["id"] for u in page["items"]]
        assert all(u["kind"] == "resident" for u in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 5
    assert client.get("/users", headers=admin, query_string={"cursor": "%%%"}).status_code == 422
    assert client.get("/users", headers=admin, query_string={"limit": 0}).status_code == 422
    assert client.get("/users", headers=admin, query_string={"kind": "alien"}).status_code == 422


def test_seeding_demo_accounts_twice_changes_nothing(identity, client):
    from identity import demo

    people = [{"kind": "resident", "name": "演示居民", "phone": "13900000001", "password": PASSWORD}]
    first = demo.seed(identity, people)
    second = demo.seed(identity, people)
    assert first == second and set(first) == {"sysadmin", "county", "13900000001"}
    tokens = client.post("/tokens", json={"grant_type": "password", "username": "sysadmin",
                                          "password": "gridgov-sysadmin"})
    assert tokens.status_code == 200
    with identity.db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM users")).scalar_one() == 3


def test_bulk_staff_are_created_once_per_person_with_all_their_grants(identity):
    from identity import demo
    from identity.tables import User

    staff = [{"key": f"p{i:06d}", "name": f"网格员{i}", "phone": f"1370000{i:04d}",
              "grants": [("grid_worker", f"grid:{i}")]} for i in range(300)]
    staff.append({"key": "p000001", "name": "网格员1", "phone": "13700000001", "grants": [("grid_head", "grid:99")]})
    ids = demo.add_staff(identity, staff)
    assert len(ids) == 300 and ids == demo.add_staff(identity, staff)
    with identity.db.transaction() as session:
        person = session.get(User, ids["p000001"])
        assert {(g.role, g.scope) for g in person.grants} == {("grid_worker", "grid:1"), ("grid_head", "grid:99")}
        assert person.password_hash is None


def test_openapi_document_lists_every_identity_route(client):
    paths = client.get("/openapi.json").json["paths"]
    assert {"/residents", "/users", "/users/{user_id}", "/users/{user_id}/contact", "/tokens",
            "/tokens/revoke", "/.well-known/jwks.json", "/keys/rotate", "/me", "/codes",
            "/password-reset"} <= set(paths)
    json.dumps(paths)


def test_a_county_admin_cannot_take_over_a_sysadmin_by_resetting_their_password(client, people):
    sysadmin_id, sysadmin = people.with_role("sysadmin")
    _, county_admin = people.with_role("county_admin")
    refused = client.put(f"/users/{sysadmin_id}/password", headers=county_admin, json={"password": PASSWORD})
    assert refused.status_code == 403
    assert client.put(f"/users/{sysadmin_id}/password", headers=sysadmin, json={"password": PASSWORD}).status_code == 204
