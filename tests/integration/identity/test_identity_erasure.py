"""PIPL in identity: a resident erases herself (or an admin erases a person who asked in
person); the account keeps its id and nothing else about her; every read of a resident's
data by staff is a line of the audit trail; her own part of the download."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from conftest import national_id, new_phone
from conftest import register as register_with_code
from sqlalchemy import create_engine, select, text

from gridkit import migrations, privacy
from identity.service import spec
from identity.tables import LoginAttempt, RefreshToken, StatusChange, User, outbox

PASSWORD = "correct horse battery"
NAME = "林晓燕"


def register(client, phone: str, nid: str | None = None, name: str = NAME) -> dict:
    body = {"phone": phone, "name": name, "password": PASSWORD} | ({"national_id": nid} if nid else {})
    answer = register_with_code(client, body)
    assert answer.status_code == 201, answer.json
    return answer.json


def log_in(client, phone: str, password: str = PASSWORD):
    return client.post("/tokens", json={"grant_type": "password", "phone": phone, "password": password})


def bearer(answer) -> dict:
    return {"Authorization": f"Bearer {answer.json['access_token']}"}


def outbox_rows(identity) -> list[tuple[str, dict, str]]:
    t = outbox.table
    with identity.db.engine.connect() as conn:
        return [(key, json.loads(body), status) for key, body, status in conn.execute(
            select(t.c.routing_key, t.c.body, t.c.status).order_by(t.c.id))]


def test_a_resident_erases_herself_and_the_account_keeps_its_id_and_nothing_else(identity, client, people):
    phone, nid = new_phone(), national_id()
    me = register(client, phone, nid)
    login = log_in(client, phone)
    own = bearer(login)
    log_in(client, phone, "not my password")  # a failed attempt, kept by the throttle under her login name
    identity.relay().drain()  # her registration went out; the settled row stays in the outbox a while

    answer = client.post("/me/erasure", headers=own, json={"password": PASSWORD})
    assert answer.status_code == 202, answer.json
    assert answer.json["user_id"] == me["id"] and answer.json["erased_at"].endswith("+00:00")

    with identity.db.transaction() as session:
        user = session.get(User, me["id"])
        assert user.display_name == privacy.ERASED_NAME and user.username is None
        assert (user.phone_sealed, user.phone_index, user.national_id_sealed, user.national_id_index) == (None,) * 4
        assert user.password_hash is None and user.disabled and user.erased_at is not None
        assert user.grants == []
        assert session.scalars(select(RefreshToken).where(RefreshToken.user_id == me["id"])).all() == []
        assert session.scalars(select(LoginAttempt)).all() == []
    assert log_in(client, phone).status_code == 401
    assert client.post("/tokens", json={"grant_type": "refresh_token",
                                        "refresh_token": login.json["refresh_token"]}).status_code == 401
    rows = outbox_rows(identity)
    assert [key for key, _, _ in rows] == ["identity.role.revoked.v1", "identity.user.disabled.v1",
                                           "identity.user.erased.v1"], "the settled registration went"
    erased = rows[-1][1]["data"]
    assert erased["user_id"] == me["id"] and erased["kind"] == "resident" and erased["by"] is None
    assert NAME not in json.dumps([r[1] for r in rows]) and phone not in json.dumps([r[1] for r in rows])
    # Her cases elsewhere keep pointing at the account: it still answers, empty.
    _, admin = people.with_role("county_admin")
    shown = client.get(f"/users/{me['id']}", headers=admin).json
    assert shown["name"] == privacy.ERASED_NAME and shown["phone"] is None and shown["disabled"] is True


def test_erasure_needs_her_password_and_a_wrong_one_changes_nothing(identity, client, people):
    phone = new_phone()
    me = register(client, phone)
    own = bearer(log_in(client, phone))
    assert client.post("/me/erasure", headers=own, json={"password": "wrong password"}).status_code == 403
    assert client.post("/me/erasure", headers=own, json={}).status_code == 403  # she has a password: give it
    assert client.post("/me/erasure", json={"password": PASSWORD}).status_code == 401
    with identity.db.transaction() as session:
        assert session.get(User, me["id"]).erased_at is None
    assert log_in(client, phone).status_code == 200
    # Staff are erased by an admin, not by themselves.
    staff_phone = new_phone()
    people.add(("grid_worker", "grid:1"), password=PASSWORD, phone=staff_phone)
    refused = client.post("/me/erasure", headers=bearer(log_in(client, staff_phone)), json={"password": PASSWORD})
    assert refused.status_code == 403 and "admin" in refused.json["detail"]


def test_an_account_without_a_password_confirms_with_a_fresh_login(identity, client, people):
    """An account that logs in another way (no password) confirms by logging in afresh."""
    fresh_id = people.add(("resident", "county"), kind="resident")
    stale_id = people.add(("resident", "county"), kind="resident")
    with identity.db.transaction() as session:
        seven_minutes_ago = datetime.now(UTC) - timedelta(minutes=7)
        old_token = identity.extras["keyring"].issue(session, session.get(User, stale_id), now=seven_minutes_ago)[0]
    refused = client.post("/me/erasure", headers={"Authorization": f"Bearer {old_token}"}, json={})
    assert refused.status_code == 403 and "log in again" in refused.json["detail"]
    assert client.post("/me/erasure", headers=people.header(fresh_id), json={}).status_code == 202


def test_an_admin_erases_a_person_who_asked_in_person_and_the_trail_says_so(identity, client, people):
    phone = new_phone()
    someone = register(client, phone)
    admin_id, admin = people.with_role("county_admin")
    _, community = people.with_role("community_admin", "grid:3")
    reason = f"本人持身份证到窗口申请，{NAME}，申请表 2024-117"
    assert client.post(f"/users/{someone['id']}/erasure", headers=community, json={"reason": reason}).status_code == 403
    assert client.post(f"/users/{admin_id}/erasure", headers=admin, json={"reason": reason}).status_code == 403

    answer = client.post(f"/users/{someone['id']}/erasure", headers=admin, json={"reason": reason})
    assert answer.status_code == 202, answer.json
    again = client.post(f"/users/{someone['id']}/erasure", headers=admin, json={"reason": reason})
    assert again.status_code == 409
    with identity.db.engine.connect() as conn:
        line = conn.execute(text("SELECT actor_id, action, subject_id, reason FROM audit_trail "
                                 "WHERE action = 'erase'")).one()
    assert (line.actor_id, line.subject_id) == (admin_id, someone["id"])
    assert NAME not in line.reason and line.reason.startswith("本人持身份证到窗口申请，***")
    with identity.db.transaction() as session:
        [change] = session.scalars(select(StatusChange).where(StatusChange.user_id == someone["id"])).all()
    assert (change.action, change.by) == ("erased", admin_id) and NAME not in change.reason
    [erased] = [data for key, data, _ in outbox_rows(identity) if key == "identity.user.erased.v1"]
    assert erased["data"]["by"] == admin_id


@pytest.mark.parametrize("target", ["sysadmin", "service"])
def test_a_county_admin_cannot_erase_a_sysadmin_or_a_service_account(client, people, target):
    _, admin = people.with_role("county_admin")
    if target == "sysadmin":
        user_id = people.add(("sysadmin", "county"))
    else:
        _, root = people.with_role("sysadmin")
        user_id = client.post("/service-accounts", headers=root, json={"name": "12345 hotline"}).json["id"]
    answer = client.post(f"/users/{user_id}/erasure", headers=admin, json={"reason": "asked at the window"})
    assert answer.status_code == 403


def test_erasure_redacts_what_admins_wrote_about_her_and_forgets_her_published_events(identity, client, people):
    phone = new_phone()
    someone = register(client, phone)
    _, admin = people.with_role("county_admin")
    disabled = client.post(f"/users/{someone['id']}/disable", headers=admin,
                           json={"reason": f"{NAME} 的手机 {phone} 丢失"})
    assert disabled.status_code == 200
    identity.relay().drain()
    assert client.post(f"/users/{someone['id']}/erasure", headers=admin,
                       json={"reason": "verified at the window"}).status_code == 202
    with identity.db.transaction() as session:
        reasons = session.scalars(select(StatusChange.reason).where(StatusChange.user_id == someone["id"])
                                  .order_by(StatusChange.id)).all()
    assert reasons == ["*** 的手机 *** 丢失", "verified at the window"]
    about_her = [key for key, body, _ in outbox_rows(identity) if someone["id"] in json.dumps(body)]
    # Already disabled: no second disable; what was published about her before is gone.
    assert about_her == ["identity.user.erased.v1"]


def test_reads_of_a_residents_account_by_admins_are_audited_and_their_contact_too(identity, client, people):
    someone = register(client, new_phone())
    admin_id, admin = people.with_role("county_admin")
    staff_id = people.add(("grid_worker", "grid:1"))
    assert client.get(f"/users/{someone['id']}", headers=admin).status_code == 200
    assert client.get(f"/users/{staff_id}", headers=admin).status_code == 200  # a work identity: no line
    assert client.get("/users", headers=admin, query_string={"kind": "resident"}).status_code == 200
    assert client.get(f"/users/{someone['id']}/contact", headers=admin,
                      query_string={"reason": "回访诉求 #77"}).status_code == 200
    with identity.db.engine.connect() as conn:
        lines = conn.execute(text("SELECT actor_id, action, subject_id, resource FROM audit_trail ORDER BY id")).all()
    assert [(a, s) for _, a, s, _ in lines] == [("read_account", someone["id"])] * 2 + [("read_contact", someone["id"])]
    assert {actor for actor, *_ in lines} == {admin_id}
    auditor_id, auditor = people.with_role("auditor")
    trail = client.get("/audit", headers=auditor, query_string={"subject": someone["id"]})
    assert trail.status_code == 200 and [line["action"] for line in trail.json["items"]] == \
        ["read_contact", "read_account", "read_account"]
    assert client.get("/audit", headers=admin).status_code == 403


def test_her_own_part_of_the_download_shows_her_data_in_clear_with_offsets(identity, client, people):
    phone, nid = new_phone(), national_id("11010519800101002")
    me = register(client, phone, nid)
    own = bearer(log_in(client, phone))
    _, admin = people.with_role("county_admin")
    client.get(f"/users/{me['id']}/contact", headers=admin, query_string={"reason": "回访诉求 #78"})
    part = client.get("/me/personal-data", headers=own)
    assert part.status_code == 200, part.json
    assert part.json["service"] == "identity" and part.json["user_id"] == me["id"]
    account = part.json["data"]["account"]
    assert (account["name"], account["phone"], account["national_id"]) == (NAME, phone, nid)
    assert account["created_at"].endswith("+08:00") and part.json["exported_at"].endswith("+08:00")
    assert [r["role"] for r in part.json["data"]["roles"]] == ["resident"]
    assert part.json["data"]["signed_in_sessions"] == 1
    [read] = part.json["reads_by_staff"]
    assert read["by_roles"] == ["county_admin"] and read["action"] == "read_contact" and read["reason"] == "回访诉求 #78"
    assert "actor_id" not in read


def test_the_contact_reads_kept_before_move_to_the_kits_audit_trail(fresh_pg_database):
    url = fresh_pg_database("identity_migration")
    migrations.upgrade(spec.migrations, url, "53988f709005")
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO contact_reads (reader_id, reader_roles, subject_id, reason, read_at) "
                          "VALUES ('admin-1', 'county_admin', 'resident-1', '回访诉求 #9', now())"))
    migrations.upgrade(spec.migrations, url)
    with engine.begin() as conn:
        line = conn.execute(text("SELECT actor_id, actor_roles, action, subject_id, resource, reason "
                                 "FROM audit_trail")).one()
        assert tuple(line) == ("admin-1", "county_admin", "read_contact", "resident-1", "user:resident-1",
                               "回访诉求 #9")
        assert not conn.execute(text("SELECT to_regclass('contact_reads')")).scalar()
    engine.dispose()

