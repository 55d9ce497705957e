"""Every date and time in an API answer is written with its offset, on SQLite (which
hands back naive datetimes) as on PostgreSQL."""

from __future__ import annotations

from datetime import datetime

import pytest

from contracts.dispatch import CASE_ASSIGNED
from identity import demo
from identity.service import spec as identity_spec
from notify.service import spec as notify_spec
from notify.testing import case_data, feed, soon


def with_offset(value: str) -> bool:
    return datetime.fromisoformat(value).utcoffset() is not None


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_identity_writes_my_account_and_grants_with_their_offset(make_runtime, db):
    identity = make_runtime(identity_spec, db=db)
    with identity.db.transaction() as session:
        user = demo.create_user_with_grants(session, identity, name="王五", kind="staff", phone="13900000011",
                                            grants=[("grid_worker", "grid:7")], password=None)
        user_id = user.id
    with identity.db.transaction() as session:
        from identity.tables import User

        token = identity.extras["keyring"].issue(session, session.get(User, user_id))[0]
    me = identity.app(testing=True).test_client().get("/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert with_offset(me.json["created_at"]), me.json["created_at"]
    assert all(with_offset(grant["granted_at"]) for grant in me.json["grants"]), me.json["grants"]


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_notify_writes_my_notices_with_their_offset(make_runtime, tokens, db):
    notify = make_runtime(notify_spec, db=db)
    me = "someone-offered"
    feed(notify, CASE_ASSIGNED, case_data() | {"offered_to": [me], "claim_due": soon(), "by": None})
    client = notify.app(testing=True).test_client()
    headers = tokens.header(sub=me)
    [notice] = client.get("/me/notifications", headers=headers).json["items"]
    assert with_offset(notice["created_at"]), notice["created_at"]
    read = client.post(f"/me/notifications/{notice['id']}/read", headers=headers).json
    assert with_offset(read["read_at"]) and with_offset(read["created_at"]), read
