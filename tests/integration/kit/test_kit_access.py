"""The kit refuses a disabled account's access tokens in every service, learnt from identity's event."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from gridkit import access, privacy, registry
from gridkit.auth import Principal
from gridkit.db import METADATA
from gridkit.testkit import wait_for
from grids.service import spec as grids_spec
from identity import demo
from identity.service import spec as identity_spec


def test_another_service_refuses_the_tokens_of_an_account_disabled_in_identity(make_runtime, tokens):
    identity = make_runtime(identity_spec, db="postgres", bus="amqp")
    grids = make_runtime(grids_spec, db="postgres", bus="amqp")
    for runtime in (identity, grids):
        runtime.start_background()
    with identity.db.transaction() as session:
        worker = demo.create_user_with_grants(session, identity, name="网格员", kind="staff",
                                              phone="13900000077", grants=[("grid_worker", "grid:1")]).id
        admin = demo.create_user_with_grants(session, identity, name="县管理员", kind="staff",
                                             phone="13900000078", grants=[("county_admin", "county")])
        admin_token = identity.extras["keyring"].issue(session, admin)[0]
    at_grids = grids.app(testing=True).test_client()
    issued_before = {"Authorization": f"Bearer {tokens.issue([('grid_worker', 'grid:1')], sub=worker)}"}
    someone_else = {"Authorization": f"Bearer {tokens.issue([('grid_worker', 'grid:1')])}"}
    assert at_grids.get("/networks", headers=issued_before).status_code == 200

    disabled = identity.app(testing=True).test_client().post(
        f"/users/{worker}/disable", headers={"Authorization": f"Bearer {admin_token}"},
        json={"reason": "left the job"})
    assert disabled.status_code == 200, disabled.json

    refused = wait_for(lambda: (r := at_grids.get("/networks", headers=issued_before)).status_code == 401 and r,
                       timeout=10, message="grids to refuse the disabled account's token")
    assert refused.json["type"].endswith("/unauthorized")
    assert at_grids.get("/networks", headers=someone_else).status_code == 200


def test_tokens_issued_after_the_revocation_are_accepted(make_runtime):
    runtime = make_runtime(grids_spec, db="postgres")
    now = datetime.now(UTC)
    with runtime.db.transaction() as session:
        session.execute(insert(runtime.spec.base.metadata.tables[access.TABLE]).values(
            subject="u-1", revoked_until=now))
    revoked = access.RevokedAccess("grids", runtime.db, runtime.spec.base.metadata)
    assert revoked.refuses(Principal("u-1", "user", issued_at=int(now.timestamp())))
    assert revoked.refuses(Principal("u-1", "user", issued_at=None))  # no iat: cannot tell, refuse
    assert not revoked.refuses(Principal("u-1", "user", issued_at=now.timestamp() + 1))
    assert not revoked.refuses(Principal("u-2", "user", issued_at=0))


def test_the_view_is_read_at_most_once_a_second_and_old_rows_are_ignored_and_forgotten(make_runtime):
    runtime = make_runtime(grids_spec, db="postgres")
    table = runtime.spec.base.metadata.tables[access.TABLE]
    revoked = access.RevokedAccess("grids", runtime.db, runtime.spec.base.metadata, every=60)
    principal = Principal("u-1", "user", issued_at=time.time() - 5)
    assert not revoked.refuses(principal)
    with runtime.db.transaction() as session:
        session.execute(insert(table).values(subject="u-1", revoked_until=datetime.now(UTC)))
        session.execute(insert(table).values(subject="u-old", revoked_until=datetime.now(UTC) - timedelta(days=2)))
    assert not revoked.refuses(principal), "read again before `every` seconds passed"
    revoked.read()
    assert revoked.refuses(principal)
    assert "u-old" not in revoked._until  # older than any living token: not even read
    assert access.forget(runtime.db, runtime.spec.base.metadata, datetime.now(UTC) - access.KEEP_FOR) == 1


@pytest.mark.parametrize("name", registry.available())
def test_every_service_keeps_the_kits_session_info_after_its_own_setup(make_runtime, name):
    """A service's setup adds to what its sessions carry; it never drops the kit's part
    (the kit's handlers find the tables and the runtime there)."""
    runtime = make_runtime(registry.load(name), db="sqlite")
    with runtime.db.sessions() as session:
        assert session.info[METADATA] is runtime.spec.base.metadata
        assert session.info[privacy.RUNTIME] is runtime
