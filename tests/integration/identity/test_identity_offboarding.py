"""Offboarding: an admin in scope disables an account (and enables it again) with a reason."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest
from conftest import new_phone
from sqlalchemy import select

from gridkit.testkit import wait_for
from identity.tables import RefreshToken, outbox

PASSWORD = "correct horse battery"


def events_of(identity, type_: str) -> list[dict]:
    t = outbox.table
    with identity.db.transaction() as session:
        return [json.loads(body)["data"] for body in session.scalars(
            select(t.c.body).where(t.c.routing_key == type_).order_by(t.c.id))]


def log_in(client, phone: str):
    return client.post("/tokens", json={"grant_type": "password", "phone": phone, "password": PASSWORD})


@pytest.fixture
def running(identity):
    identity.start_background()  # relay and the kit's accounts queue, as `gridgov worker identity`
    return identity


def test_a_disabled_worker_is_refused_at_once_and_loses_sessions_and_grants(running, client, people):
    identity = running
    _, admin = people.with_role("community_admin", "grid:c1")
    phone = new_phone()
    worker = people.add(("grid_worker", "grid:c1"), password=PASSWORD, phone=phone)
    tokens = log_in(client, phone).json
    before = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert client.get("/me", headers=before).status_code == 200

    answer = client.post(f"/users/{worker}/disable", headers=admin, json={"reason": "left the job in May"})
    assert answer.status_code == 200, answer.json
    assert answer.json["disabled"] is True and answer.json["grants"] == []

    # Within seconds the token issued before is refused, through the event and the kit's table.
    wait_for(lambda: client.get("/me", headers=before).status_code == 401, timeout=10,
             message="the old access token to be refused")
    assert log_in(client, phone).status_code == 401
    assert client.post("/tokens", json={"grant_type": "refresh_token",
                                        "refresh_token": tokens["refresh_token"]}).status_code == 401
    with identity.db.transaction() as session:
        assert all(row.revoked_at for row in session.scalars(
            select(RefreshToken).where(RefreshToken.user_id == worker)))
    revoked = events_of(identity, "identity.role.revoked.v1")
    assert [(e["user_id"], e["role"], e["scope"]) for e in revoked] == [(worker, "grid_worker", "grid:c1")]
    [disabled] = events_of(identity, "identity.user.disabled.v1")
    assert disabled["user_id"] == worker and disabled["kind"] == "staff"
    changes = client.get(f"/users/{worker}/status-changes", headers=admin).json
    assert [(c["action"], c["reason"]) for c in changes] == [("disabled", "left the job in May")]


def test_enabled_again_a_person_logs_in_afresh_while_old_tokens_stay_refused(running, client, people):
    _, admin = people.with_role("county_admin")
    phone = new_phone()
    resident = people.add(("resident", "county"), kind="resident", password=PASSWORD, phone=phone)
    old = {"Authorization": f"Bearer {log_in(client, phone).json['access_token']}"}
    assert client.post(f"/users/{resident}/disable", headers=admin, json={"reason": "reported as stolen"}).status_code == 200
    wait_for(lambda: client.get("/me", headers=old).status_code == 401, timeout=10)

    enabled = client.post(f"/users/{resident}/enable", headers=admin, json={"reason": "phone recovered"})
    assert enabled.status_code == 200 and enabled.json["disabled"] is False
    assert [(g["role"], g["scope"]) for g in enabled.json["grants"]] == [("resident", "county")]
    # A token's iat has one-second precision: a login in the second of the disable is refused too.
    disabled_at = datetime.fromisoformat(events_of(running, "identity.user.disabled.v1")[0]["at"])
    wait_for(lambda: time.time() >= int(disabled_at.timestamp()) + 1, timeout=3)
    fresh = {"Authorization": f"Bearer {log_in(client, phone).json['access_token']}"}
    assert client.get("/me", headers=fresh).status_code == 200
    assert client.get("/me", headers=old).status_code == 401
    assert [c["action"] for c in client.get(f"/users/{resident}/status-changes", headers=admin).json] == \
        ["disabled", "enabled"]


@pytest.mark.parametrize("actor, target, status", [
    (("community_admin", "grid:c1"), ("grid_worker", "grid:c2"), 403),   # another community's worker
    (("community_admin", "grid:c1"), ("resident", "county"), 403),       # residents are the county's
    (("street_admin", "grid:s1"), ("county_admin", "county"), 403),
    (("county_admin", "county"), ("sysadmin", "county"), 403),
    (("grid_head", "grid:c1"), ("grid_worker", "grid:c1"), 403),         # not an admin
    (("community_admin", "grid:c1"), ("grid_head", "grid:c1"), 200),
    (("county_admin", "county"), ("dept_officer", "department:police"), 200),
])
def test_only_an_admin_in_scope_disables_and_a_refusal_changes_nothing(client, people, actor, target, status):
    _, admin = people.with_role(*actor)
    phone = new_phone()
    kind = "resident" if target[0] == "resident" else "staff"
    someone = people.add(target, kind=kind, password=PASSWORD, phone=phone)
    answer = client.post(f"/users/{someone}/disable", headers=admin, json={"reason": "left the job"})
    assert answer.status_code == status, answer.json
    if status != 200:
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert log_in(client, phone).status_code == 200


def test_nobody_disables_themselves_and_a_second_disable_is_a_conflict(client, people):
    me, admin = people.with_role("county_admin")
    assert client.post(f"/users/{me}/disable", headers=admin, json={"reason": "just testing"}).status_code == 403
    someone = people.add(("grid_worker", "grid:1"))
    assert client.post(f"/users/{someone}/disable", headers=admin, json={"reason": "left"}).status_code == 422
    assert client.post(f"/users/{someone}/disable", headers=admin, json={"reason": "left the job"}).status_code == 200
    assert client.post(f"/users/{someone}/disable", headers=admin, json={"reason": "left the job"}).status_code == 409
    assert client.post(f"/users/{someone}/enable", headers=admin, json={"reason": "came back"}).status_code == 200
    assert client.post(f"/users/{someone}/enable", headers=admin, json={"reason": "came back"}).status_code == 409
    assert client.post("/users/nobody/disable", headers=admin, json={"reason": "left the job"}).status_code == 404


def test_a_grid_admin_enables_again_only_whom_they_could_have_disabled(client, people):
    _, county = people.with_role("county_admin")
    _, here = people.with_role("community_admin", "grid:c1")
    _, there = people.with_role("community_admin", "grid:c2")
    worker = people.add(("grid_worker", "grid:c1"))
    assert client.post(f"/users/{worker}/disable", headers=county, json={"reason": "on leave"}).status_code == 200
    assert client.post(f"/users/{worker}/enable", headers=there, json={"reason": "back again"}).status_code == 403
    assert client.post(f"/users/{worker}/enable", headers=here, json={"reason": "back again"}).status_code == 200


