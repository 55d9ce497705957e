"""The community figures dispatch gives Prometheus ("一屏知社区") are the ones staff read in
GET /figures?by=community, on PostgreSQL and on SQLite, claim times included."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from contracts.identity import ROLE_GRANTED, ROLE_REVOKED
from contracts.intake import PETITION_RATED
from dispatch import figures
from dispatch.service import spec
from dispatch.tables import Case
from dispatch.testing import EAST, NORTH, SW1, feed, seed_world, submit


@pytest.fixture(params=["postgres", "sqlite"])
def dispatch(make_runtime, request):
    runtime = make_runtime(spec, db=request.param)
    runtime.extras["world"] = seed_world(runtime)
    return runtime


COUNTY_ADMIN_GRANT = 4  # admin-county in dispatch.testing.GRANTS


def measured(runtime) -> dict[str, dict[tuple, float]]:
    """Sample name → {label values: value} from the collector."""
    found: dict[str, dict[tuple, float]] = {}
    for family in figures.cases(runtime):
        for s in family.samples:
            found.setdefault(s.name, {})[tuple(s.labels.values())] = s.value
    return found


def test_the_community_figures_for_prometheus_are_those_of_get_figures(dispatch, client, as_):
    in_time, late, waiting, east, north = (submit(dispatch, p) for p in (SW1, SW1, SW1, EAST, NORTH))
    for case_id in (in_time, late):
        assert client.post(f"/cases/{case_id}/claim", headers=as_("worker-sw1-a")).status_code == 201
    past = datetime.now(UTC) - timedelta(hours=1)
    with dispatch.db.transaction() as session:
        session.execute(update(Case).where(Case.id == late).values(
            first_offered_at=past - timedelta(hours=1), first_claim_due=past - timedelta(minutes=30)))
        session.execute(update(Case).where(Case.id == waiting).values(step_due_at=past))
    for case_id, rating in ((in_time, 5), (late, 2)):
        client.post(f"/cases/{case_id}/resolve", json={"result": "done"}, headers=as_("worker-sw1-a"))
        petition = client.get(f"/cases/{case_id}", headers=as_("admin-west")).json["petition_id"]
        feed(dispatch, PETITION_RATED, {"petition_id": petition, "reporter_id": "resident-1", "rating": rating,
                                        "at": datetime.now(UTC)})

    shown = {row["key"]: row for row in client.get("/figures?by=community", headers=as_("admin-county")).json["rows"]}
    got = measured(dispatch)
    opened: dict[str, float] = {}
    for (community, _state), count in got["gridgov_dispatch_cases"].items():
        opened[community] = opened.get(community, 0) + count
    assert opened == {key: row["opened"] for key, row in shown.items()} == {"DL-01-01": 3, "DL-01-02": 1, "none": 1}
    for part in ("offered", "claimed_in_time", "resolved", "rated", "satisfied", "overdue"):
        assert got[f"gridgov_dispatch_cases_{part}"] == {(key,): row[part] for key, row in shown.items()}, part
    west = {part: got[f"gridgov_dispatch_cases_{part}"][("DL-01-01",)]
            for part in ("offered", "claimed_in_time", "resolved", "rated", "satisfied", "overdue")}
    assert west == {"offered": 3, "claimed_in_time": 1, "resolved": 2, "rated": 2, "satisfied": 1, "overdue": 1}
    assert got["gridgov_dispatch_cases"][("DL-01-01", "closed")] == 2
    # claimed at once, and (its first offer moved two hours back after the claim) just under
    # two hours after it; the median of /figures lies between
    claims = {labels[1]: n for labels, n in got["gridgov_dispatch_claim_seconds_bucket"].items()
              if labels[0] == "DL-01-01"}
    assert (claims["30.0"], claims["3600.0"], claims["7200.0"], claims["+Inf"]) == (1, 1, 2, 2)
    assert got["gridgov_dispatch_claim_seconds_count"][("DL-01-01",)] == 2
    assert 7100 < got["gridgov_dispatch_claim_seconds_sum"][("DL-01-01",)] < 7300
    assert claims["+Inf"] == 2 and got["gridgov_dispatch_claim_seconds_count"][("DL-01-02",)] == 0
    assert 3600 < shown["DL-01-01"]["median_claim_seconds"] < 7300


def test_a_case_nobody_can_take_is_counted_while_it_waits(dispatch):
    feed(dispatch, ROLE_REVOKED, {"grant_id": COUNTY_ADMIN_GRANT, "user_id": "admin-county", "role": "county_admin",
                                  "scope": "county", "by": None})
    submit(dispatch, NORTH)  # the county's catch-all queue, and no county admin to offer it to
    assert measured(dispatch)["gridgov_dispatch_cases_unattended"] == {("none", "catch_all"): 1, ("none", "grid"): 0}

    feed(dispatch, ROLE_GRANTED, {"grant_id": 51, "user_id": "new-county-admin", "role": "county_admin",
                                  "scope": "county", "by": None})
    assert measured(dispatch)["gridgov_dispatch_cases_unattended"] == {("none", "catch_all"): 0, ("none", "grid"): 0}
