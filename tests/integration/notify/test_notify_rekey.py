"""A data key rotation in notify: contacts and code texts sealed under the old key still
open while it is previous, ``gridgov rekey notify`` re-seals them, then the old key goes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from contracts.identity import CODE_ISSUED, CODE_PURPOSE, RECIPIENT_PURPOSE, TRANSIT_CONTEXT
from gridkit.crypto import DataKey, new_key
from gridkit.testkit import gridgov
from notify.deliveries import Deliverer
from notify.service import spec
from notify.testing import feed

CONTACTS = {"zhang": ("zhang.wei@example.cn", "13812345678"), "li": ("li.na@example.cn", None)}
MASKED = {"zhang": {"email": "z***@example.cn", "phone": "138****5678"},
          "li": {"email": "l***@example.cn", "phone": None}}


def code_issued(runtime, phone: str) -> dict:
    """identity.code.issued, sealed with the transit key ``runtime``'s settings give."""
    transit = DataKey.from_settings(runtime.settings, context=TRANSIT_CONTEXT)
    return {"recipient_sealed": transit.seal(phone, RECIPIENT_PURPOSE),
            "code_sealed": transit.seal("246810", CODE_PURPOSE), "purpose": "login", "message": "code",
            "language": "zh-CN", "expires_at": datetime.now(UTC) + timedelta(minutes=5)}


def counts(result) -> dict[str, str]:
    return dict(line.removeprefix("notify ").split(": ", 1) for line in result.stdout.splitlines())


def test_contacts_and_code_texts_survive_a_rotation_and_rekey_moves_them_to_the_new_key(
        make_runtime, channel_settings, sms_gateway, tokens):
    old, new = new_key(), new_key()
    before = make_runtime(spec, data_key=old, extra=channel_settings)
    client = before.app(testing=True).test_client()
    headers = {name: tokens.header(("grid_worker", "grid:7"), sub=str(uuid.uuid4())) for name in CONTACTS}
    for name, (email, phone) in CONTACTS.items():
        answer = client.put("/me/contacts", json={"email": email, "phone": phone}, headers=headers[name])
        assert answer.status_code == 200
    feed(before, CODE_ISSUED, code_issued(before, "13900000001"))  # its text waits, sealed with notify's old key
    in_flight = code_issued(before, "13900000002")  # sealed by identity before the switch, still on the queue

    during = make_runtime(spec, db=before.settings.database_url, data_key=new, data_key_previous=old,
                          extra=channel_settings)
    client = during.app(testing=True).test_client()
    assert {name: client.get("/me/contacts", headers=headers[name]).json for name in CONTACTS} == MASKED
    feed(during, CODE_ISSUED, in_flight)  # opens with the old transit key; its text is sealed with the new one

    first = gridgov(during.settings, "rekey", "notify")
    assert first.returncode == 0, first.stderr
    assert counts(first) == {"contacts.email_sealed": "2 re-sealed, 0 refused",
                             "contacts.phone_sealed": "1 re-sealed, 0 refused",
                             "code_texts.recipient_sealed": "1 re-sealed, 0 refused",
                             "code_texts.text_sealed": "1 re-sealed, 0 refused"}
    again = gridgov(during.settings, "rekey", "notify")
    assert again.returncode == 0 and set(counts(again).values()) == {"0 re-sealed, 0 refused"}

    after = make_runtime(spec, db=before.settings.database_url, data_key=new, extra=channel_settings)
    client = after.app(testing=True).test_client()
    assert {name: client.get("/me/contacts", headers=headers[name]).json for name in CONTACTS} == MASKED
    deliverer = Deliverer(after)
    try:
        assert deliverer.run_once() == 2
    finally:
        deliverer.close()
    assert [len(sms_gateway.texts_to(phone)) for phone in ("13900000001", "13900000002")] == [1, 1]
