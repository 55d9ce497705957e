"""Phone numbers and national IDs: sealed at rest, masked for others, never in events or logs."""

from __future__ import annotations

import json
import logging

from conftest import ask_code, national_id, new_phone, register, texted_code
from sqlalchemy import inspect, text

PASSWORD = "correct horse battery"
NID = national_id()


def resident(client, phone, nid=NID):
    response = register(client, {"phone": phone, "name": "周居民", "password": PASSWORD, "national_id": nid})
    assert response.status_code == 201
    return response.json


def masked(phone):
    return phone[:3] + "****" + phone[-4:]


def test_admins_see_masked_data_in_every_response(client, people):
    phone = new_phone()
    someone = resident(client, phone)
    _, admin = people.with_role("county_admin")
    one = client.get(f"/users/{someone['id']}", headers=admin).json
    assert one["phone"] == masked(phone) and one["national_id"] == NID[:3] + "*" * 11 + NID[-4:]
    listed = client.get("/users", headers=admin, query_string={"kind": "resident"}).json["items"]
    assert [u["phone"] for u in listed] == [masked(phone)]
    staff_phone = new_phone()
    created = client.post("/users", headers=admin, json={"kind": "staff", "name": "员工", "phone": staff_phone})
    assert created.json["phone"] == masked(staff_phone)
    # Nothing the admin received contains the raw numbers.
    for body in (one, listed, created.json):
        text_ = json.dumps(body)
        assert phone not in text_ and NID not in text_ and staff_phone not in text_


def test_only_the_person_themselves_sees_their_data_unmasked(client, people):
    phone = new_phone()
    me = resident(client, phone)
    token = client.post("/tokens", json={"grant_type": "password", "phone": phone, "password": PASSWORD}).json
    own = {"Authorization": f"Bearer {token['access_token']}"}
    assert client.get("/me", headers=own).json["phone"] == phone
    assert client.get(f"/users/{me['id']}", headers=own).json["national_id"] == NID
    other = resident(client, new_phone(), national_id("11010519491231003"))
    assert client.get(f"/users/{other['id']}", headers=own).status_code == 403


def test_reading_contact_data_is_audited_and_needs_a_reason(identity, client, people):
    phone = new_phone()
    someone = resident(client, phone)
    reader, admin = people.with_role("community_admin", "grid:3")
    assert client.get(f"/users/{someone['id']}/contact", headers=admin).status_code == 422
    answer = client.get(f"/users/{someone['id']}/contact", headers=admin,
                        query_string={"reason": "回访诉求 #1024"})
    assert answer.status_code == 200 and answer.json["phone"] == phone
    with identity.db.engine.connect() as conn:
        row = conn.execute(text("SELECT actor_id, actor_roles, action, subject_id, resource, reason, at "
                                "FROM audit_trail WHERE action = 'read_contact'")).one()
    assert (row.actor_id, row.subject_id, row.reason) == (reader, someone["id"], "回访诉求 #1024")
    assert (row.actor_roles, row.resource) == ("community_admin", f"user:{someone['id']}")
    assert row.at is not None


def test_phone_and_national_id_are_sealed_at_rest_in_every_table(identity, client):
    phone = new_phone()
    resident(client, phone)
    client.post("/tokens", json={"grant_type": "password", "phone": phone, "password": "wrong-wrong"})
    with identity.db.engine.connect() as conn:
        raw = conn.execute(text("SELECT phone_sealed, phone_index, national_id_sealed FROM users")).one()
        assert raw.phone_sealed.startswith("v2:") and len(raw.phone_index) == 64
        for table in inspect(conn).get_table_names():
            dump = json.dumps([list(map(str, r)) for r in conn.execute(text(f'SELECT * FROM "{table}"'))])
            assert phone[3:] not in dump and NID[6:14] not in dump, table


def test_events_name_the_person_but_never_carry_their_phone(identity, client, people):
    phone = new_phone()
    someone = resident(client, phone)
    _, admin = people.with_role("county_admin")
    grant = client.post(f"/users/{someone['id']}/grants", headers=admin,
                        json={"role": "volunteer", "scope": "grid:4"}).json
    assert client.delete(f"/users/{someone['id']}/grants/{grant['id']}", headers=admin).status_code == 204
    with identity.db.engine.connect() as conn:
        events = [json.loads(b) for (b,) in conn.execute(text("SELECT body FROM outbox ORDER BY id"))]
    mine = [e for e in events if e.get("subject") == someone["id"]]
    assert [e["type"] for e in mine] == ["identity.user.registered.v1", "identity.role.granted.v1",
                                          "identity.role.granted.v1", "identity.role.revoked.v1"]
    assert mine[0]["data"] == {"user_id": someone["id"], "kind": "resident", "display_name": "周**"}
    assert mine[-1]["data"] | {"grant_id": 0} == {"grant_id": 0, "user_id": someone["id"], "role": "volunteer",
                                                  "scope": "grid:4", "by": mine[-1]["data"]["by"]}
    assert phone not in json.dumps(events) and NID not in json.dumps(events)
    identity.relay().drain()  # and they publish
    with identity.db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM outbox WHERE status = 'pending'")).scalar_one() == 0


def test_logs_never_contain_phone_numbers(client, caplog):
    phone = new_phone()
    with caplog.at_level(logging.DEBUG):
        resident(client, phone)
        client.post("/tokens", json={"grant_type": "password", "phone": phone, "password": "wrong-wrong"})
        ask_code(client, phone, "register")  # already registered: its owner is told so
        client.post("/residents", json={"phone": phone, "code": "123456", "name": "重复", "password": PASSWORD})
        ask_code(client, phone, "login")
        client.post("/tokens", json={"grant_type": "otp", "phone": phone, "code": "000000"})
        client.post("/tokens", json={"grant_type": "otp", "phone": phone,
                                     "code": texted_code(client, phone, "login")})
        ask_code(client, phone, "reset")
        client.post("/password-reset", json={"phone": phone, "code": texted_code(client, phone, "reset"),
                                             "password": "a brand new secret"})
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert phone not in logged and NID not in logged
