"""Embedded mode keeps dispatch on SQLite: the same journey and sweep work there."""

from datetime import datetime, timedelta

from dispatch.service import spec, sweep_once
from dispatch.testing import SW1, headers, seed_world, submit


def test_the_journey_and_the_sweep_work_on_sqlite(make_runtime, tokens):
    runtime = make_runtime(spec, db="sqlite")
    seed_world(runtime)
    client = runtime.app(testing=True).test_client()
    case_id = submit(runtime, SW1, claim_minutes=30)
    case = client.get(f"/cases/{case_id}", headers=headers(tokens, "admin-west")).json
    assert (case["grid_id"], case["state"]) == (12, "offered")
    started = datetime.fromisoformat(case["step_started_at"])
    assert sweep_once(runtime, started + timedelta(minutes=31))["escalated"] == 1
    claimed = client.post(f"/cases/{case_id}/claim", headers=headers(tokens, "head-sw1"))
    assert claimed.status_code == 201
    resolved = client.post(f"/cases/{case_id}/resolve", json={"result": "done"}, headers=headers(tokens, "head-sw1"))
    assert resolved.json["state"] == "resolved"
    assert sweep_once(runtime, datetime.fromisoformat(resolved.json["resolved_at"]) + timedelta(days=8)
                      )["rating_timeout"] == 1
