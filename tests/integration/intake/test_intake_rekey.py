"""A data key rotation in intake: reporters' contacts and stored idempotent answers are
re-sealed by ``gridkit.rekey`` (what ``gridgov rekey intake`` runs) and read afterwards."""

from __future__ import annotations

from gridkit.crypto import new_key
from gridkit.rekey import rekey
from intake.service import spec
from intake.testing import seed_places

from .conftest import petition_body


def outcomes(runtime) -> dict[str, tuple[int, int]]:
    """Per declared column: (re-sealed, refused)."""
    return {o.sealed.label: (o.resealed, len(o.refused)) for o in rekey(runtime, batch=1)}


def test_contacts_and_stored_answers_open_after_a_rotation_and_rekey(make_runtime, people):
    old, new = new_key(), new_key()
    before = make_runtime(spec, data_key=old)
    seed_places(before)
    _, headers = people.resident(name="王小明")
    headers |= {"Idempotency-Key": "leak-1"}
    body = petition_body(contact={"phone": "13812345678"})
    first = before.app(testing=True).test_client().post("/petitions", json=body, headers=headers)
    assert first.status_code == 201

    during = make_runtime(spec, db=before.settings.database_url, data_key=new, data_key_previous=old)
    assert outcomes(during) == {"petitions.contact_name": (1, 0), "petitions.contact_phone": (1, 0),
                                "idempotency_keys.body": (1, 0)}
    assert set(outcomes(during).values()) == {(0, 0)}

    after = make_runtime(spec, db=before.settings.database_url, data_key=new)
    client = after.app(testing=True).test_client()
    again = client.post("/petitions", json=body, headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true" and again.json == first.json
    shown = client.get(f"/petitions/{first.json['id']}", headers=headers).json["reporter"]
    assert shown["phone"] == "13812345678" and shown["name"] == "王小明"
