"""Every service keeps an audit trail of personal data read by staff; auditors read it."""

from __future__ import annotations

import pytest

from gridkit import audit
from gridkit.auth import Grant, Principal
from grids.service import spec as grids_spec


@pytest.mark.parametrize("db", ["postgres", "sqlite"])
def test_an_auditor_reads_the_trail_newest_first_page_by_page(make_runtime, tokens, db):
    runtime = make_runtime(grids_spec, db=db)
    reader = Principal("admin-1", "user", (Grant("community_admin", "grid:7"), Grant("grid_head", "grid:7")))
    app = runtime.app(testing=True)
    with app.test_request_context(), runtime.db.transaction() as session:
        for n in range(3):
            audit.record(session, reader, "read_contact", subject_id=f"resident-{n}",
                         resource=f"household:{n}", reason="visit planned")
    client = app.test_client()
    auditor = tokens.header(("auditor", "county"))
    first = client.get("/audit?limit=2", headers=auditor)
    assert first.status_code == 200, first.json
    assert [line["subject_id"] for line in first.json["items"]] == ["resident-2", "resident-1"]
    line = first.json["items"][0]
    assert line["actor_id"] == "admin-1" and line["actor_roles"] == ["community_admin", "grid_head"]
    assert line["action"] == "read_contact" and line["reason"] == "visit planned"
    assert line["at"].endswith("+00:00")
    rest = client.get(f"/audit?limit=2&cursor={first.json['next_cursor']}", headers=auditor).json
    assert [line["subject_id"] for line in rest["items"]] == ["resident-0"] and rest["next_cursor"] is None
    only = client.get("/audit?subject=resident-1", headers=auditor).json["items"]
    assert [line["resource"] for line in only] == ["household:1"]


def test_nobody_but_an_auditor_reads_the_trail(make_runtime, tokens):
    client = make_runtime(grids_spec, db="postgres").app(testing=True).test_client()
    for grants in ([("sysadmin", "county")], [("county_admin", "county")], [("resident", "county")]):
        assert client.get("/audit", headers=tokens.header(*grants)).status_code == 403
    assert client.get("/audit").status_code == 401
    assert client.get("/audit?cursor=WzFd&limit=0", headers=tokens.header(("auditor", "county"))).status_code == 422
