"""The same petition loop on SQLite (embedded mode), through the in-memory bus's worker."""

from __future__ import annotations

from gridkit.crypto import new_key
from intake.service import spec
from intake.testing import feed_case, seed_places

from .conftest import petition_body, upload


def test_submit_follow_resolve_rate_and_rework_on_sqlite(make_runtime, people):
    runtime = make_runtime(spec, db="sqlite", data_key=new_key())
    seed_places(runtime)
    client = runtime.app(testing=True).test_client()
    _, headers = people.resident(name="赵六")
    photo = upload(client, headers | {"Idempotency-Key": "photo-1"}).json["id"]
    body = petition_body(photos=[photo], contact={"phone": "13812345678"})
    first = client.post("/petitions", json=body, headers=headers | {"Idempotency-Key": "p-1"})
    again = client.post("/petitions", json=body, headers=headers | {"Idempotency-Key": "p-1"})
    assert first.status_code == again.status_code == 201 and first.json["id"] == again.json["id"]
    petition = first.json
    _, neighbour = people.resident()
    assert client.post("/petitions", json=petition_body(), headers=neighbour).status_code == 409
    assert client.post(f"/petitions/{petition['id']}/followers", headers=neighbour).status_code == 201
    for kind in ("opened", "assigned", "claimed", "resolved"):
        assert feed_case(runtime, kind, petition) == "processed"
    assert client.post(f"/petitions/{petition['id']}/rating", json={"rating": 2}, headers=headers).status_code == 200
    assert client.post(f"/petitions/{petition['id']}/rework", json={"reason": "没修好"},
                       headers=headers).status_code == 200
    page = client.get("/me/petitions", headers=headers).json
    assert [p["id"] for p in page["items"]] == [petition["id"]]
    assert page["items"][0]["reporter"]["phone"] == "13812345678"
    timeline = client.get(f"/petitions/{petition['id']}/timeline", headers=neighbour).json
    assert timeline["steps"][-1]["text"] == "居民申请不满意重办"  # a follower never reads the reason
    own = client.get(f"/petitions/{petition['id']}/timeline", headers=headers).json
    assert own["steps"][-1]["text"] == "您申请不满意重办：没修好"
