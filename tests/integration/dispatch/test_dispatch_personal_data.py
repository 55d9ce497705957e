"""PIPL in dispatch: her cases in her download; after her erasure they stay, and count in
the figures as before, without showing her to staff."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts.intake import PETITION_RATED
from dispatch.testing import SW1, feed, submit
from gridkit import privacy

HER = "resident-erased"


def test_her_cases_stay_in_the_figures_and_no_longer_show_her(dispatch, client, as_, tokens):
    rated = submit(dispatch, SW1, reporter_id=HER)
    waiting = submit(dispatch, SW1, reporter_id=HER)
    someone_elses = submit(dispatch, SW1, reporter_id="resident-2")
    client.post(f"/cases/{rated}/claim", headers=as_("worker-sw1-a"))
    client.post(f"/cases/{rated}/resolve", json={"result": "已疏通"}, headers=as_("worker-sw1-a"))
    petition = client.get(f"/cases/{rated}", headers=as_("admin-west")).json["petition_id"]
    feed(dispatch, PETITION_RATED, {"petition_id": petition, "reporter_id": HER, "rating": 5, "at": datetime.now(UTC)})

    own = tokens.header(("resident", "county"), sub=HER)
    part = client.get("/me/personal-data", headers=own).json
    cases = {c["case_id"]: c for c in part["data"]["cases_from_my_petitions"]}
    assert set(cases) == {rated, waiting} and cases[rated]["rating"] == 5 and cases[rated]["state"] == "closed"
    assert cases[rated]["opened_at"].endswith("+08:00")

    figures = client.get("/figures?by=grid", headers=as_("admin-county")).json
    assert client.get(f"/cases/{waiting}", headers=as_("admin-west")).json["reporter_id"] == HER

    with dispatch.db.transaction() as session:
        privacy.erase(dispatch, session, HER, datetime.now(UTC))

    assert client.get("/figures?by=grid", headers=as_("admin-county")).json == figures
    for case_id in (rated, waiting):
        shown = client.get(f"/cases/{case_id}", headers=as_("admin-west")).json
        assert shown["reporter_id"] is None and shown["state"] in ("closed", "offered")
    assert client.get(f"/cases/{someone_elses}", headers=as_("admin-west")).json["reporter_id"] == "resident-2"
    # The waiting case goes on as before: claimed and handled.
    assert client.post(f"/cases/{waiting}/claim", headers=as_("worker-sw1-a")).status_code == 201
