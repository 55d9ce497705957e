"""A data key rotation: the old key in GRIDGOV_DATA_KEY_PREVIOUS, the new one current, then
``gridgov rekey identity`` re-seals and re-indexes everything, then the old key goes."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

from conftest import ask_code, national_id, new_phone, register, texted_code, texts_to
from sqlalchemy import select, text

from gridkit.crypto import DataKey, new_key
from gridkit.testkit import gridgov
from identity.service import spec
from identity.tables import SigningKey, User

PASSWORD = "correct horse battery"
NO_PAUSE = {"GRIDGOV_CODE_RESEND_SECONDS": "0"}


def identity_key(key: str) -> DataKey:
    return DataKey(base64.urlsafe_b64decode(key), "identity")


def login(client, phone):
    return client.post("/tokens", json={"grant_type": "password", "phone": phone, "password": PASSWORD})


def counts(result) -> dict[str, str]:
    """``gridgov rekey``'s stdout: column → "n re-sealed, m refused"."""
    return dict(line.removeprefix("identity ").split(": ", 1) for line in result.stdout.splitlines())


def test_a_rotated_key_keeps_accounts_usable_and_rekey_moves_every_value_to_the_new_key(make_runtime):
    old, new = new_key(), new_key()
    before = make_runtime(spec, data_key=old, extra=NO_PAUSE)
    client = before.app(testing=True).test_client()
    phones = [new_phone() for _ in range(3)]
    nids = [national_id(f"1101051949123100{i}") for i in range(3)]
    for phone, nid in zip(phones, nids, strict=True):
        assert register(client, {"phone": phone, "name": "周居民", "password": PASSWORD,
                                 "national_id": nid}).status_code == 201
    ask_code(client, phones[0], "login")  # 4 texts for notify in the outbox, sealed with the transit key

    # The new key is current, the old one previous: what was written before still works.
    during = make_runtime(spec, db=before.settings.database_url, data_key=new, data_key_previous=old,
                          extra=NO_PAUSE)
    client = during.app(testing=True).test_client()
    assert login(client, phones[0]).status_code == 200  # found by its old index, signed with a key sealed under A
    ask_code(client, phones[1], "login")  # the account is found: a login code is texted
    code = texted_code(client, phones[1], "login")
    assert code and client.post("/tokens", json={"grant_type": "otp", "phone": phones[1],
                                                 "code": code}).status_code == 200
    ask_code(client, phones[2], "register")
    assert texts_to(client, phones[2])[-1]["message"] == "account_exists"
    taken = register(client, {"phone": new_phone(), "name": "冒名者", "password": PASSWORD, "national_id": nids[0]})
    assert taken.status_code == 409 and taken.json["field"] == "national_id"

    first = gridgov(during.settings, "rekey", "identity")
    assert first.returncode == 0, first.stderr
    assert counts(first) == {
        "users.phone_sealed": "3 re-sealed, 0 refused", "users.national_id_sealed": "3 re-sealed, 0 refused",
        "signing_keys.private_sealed": "1 re-sealed, 0 refused",
        "outbox.body[data.recipient_sealed]": "4 re-sealed, 0 refused",
        "outbox.body[data.code_sealed]": "4 re-sealed, 0 refused"}
    key = identity_key(new)
    with during.db.sessions() as session:
        users = session.scalars(select(User).where(User.phone_sealed.is_not(None))).all()
        assert len(users) == 3
        for user in users:
            phone, nid = key.open(user.phone_sealed, "phone"), key.open(user.national_id_sealed, "national_id")
            assert key.is_current(user.phone_sealed) and user.phone_index == key.index(phone, "phone")
            assert key.is_current(user.national_id_sealed) and user.national_id_index == key.index(nid, "national_id")
        assert all(key.is_current(sealed) for sealed in session.scalars(select(SigningKey.private_sealed)))

    again = gridgov(during.settings, "rekey", "identity")
    assert again.returncode == 0 and set(counts(again).values()) == {"0 re-sealed, 0 refused"}

    # The old key gone: everything opens, phones and national IDs are found by their new index.
    after = make_runtime(spec, db=before.settings.database_url, data_key=new, extra=NO_PAUSE)
    client = after.app(testing=True).test_client()
    for phone in phones:
        tokens = login(client, phone)
        assert tokens.status_code == 200
        me = client.get("/me", headers={"Authorization": f"Bearer {tokens.json['access_token']}"}).json
        assert me["phone"] == phone and me["national_id"] in nids
    assert [t["message"] for t in texts_to(client, phones[0])] == ["code", "code"]
    taken = register(client, {"phone": new_phone(), "name": "冒名者", "password": PASSWORD, "national_id": nids[1]})
    assert taken.status_code == 409 and taken.json["field"] == "national_id"


def test_a_value_no_key_opens_is_refused_by_name_and_left_as_it_is(make_runtime):
    old, new, unknown = new_key(), new_key(), identity_key(new_key())
    runtime = make_runtime(spec, data_key=new, data_key_previous=old)
    lost, stranger = str(uuid.uuid4()), unknown.seal(new_phone(), "phone")
    with runtime.db.transaction() as session:
        for user_id, sealed in ((str(uuid.uuid4()), identity_key(old).seal(new_phone(), "phone")),
                                (lost, stranger), (str(uuid.uuid4()), identity_key(old).seal(new_phone(), "phone"))):
            session.add(User(id=user_id, kind="resident", display_name="周*", disabled=False,
                             created_at=datetime.now(UTC), phone_sealed=sealed))

    result = gridgov(runtime.settings, "rekey", "identity", "--batch", "2")
    assert result.returncode == 1
    assert counts(result)["users.phone_sealed"] == "2 re-sealed, 1 refused"
    assert f"users.phone_sealed of the row id={lost}" in result.stderr and unknown.kid in result.stderr
    with runtime.db.sessions() as session:
        assert session.get(User, lost).phone_sealed == stranger
        assert session.scalar(text("SELECT count(*) FROM users WHERE phone_sealed LIKE :current"),
                              {"current": f"v2:{identity_key(new).kid}:%"}) == 2
