"""intake's figures for Prometheus ("一屏知社区"): petitions counted by community, category
and status from the table, never naming a petition or a person."""

from sqlalchemy import update

from intake import figures
from intake.tables import Petition
from intake.testing import feed_case

from .conftest import submit


def test_petitions_are_counted_by_community_category_and_status(intake, client, people):
    _, resident = people.resident()
    leak = submit(client, resident)
    submit(client, resident, separate=True)
    submit(client, resident, category="noise")
    feed_case(intake, "opened", leak)
    feed_case(intake, "assigned", leak)

    (family,) = figures.petitions(intake)
    counted = {tuple(s.labels.values()): s.value for s in family.samples}
    assert family.name == "gridgov_intake_petitions"
    assert counted == {("DL-01-01", "water_leak", "assigned"): 1, ("DL-01-01", "water_leak", "submitted"): 1,
                       ("DL-01-01", "noise", "submitted"): 1}
    text = repr(family.samples)
    assert leak["id"] not in text and "王小明" not in text


def test_a_petition_in_no_community_counts_as_none(intake, client, people):
    _, resident = people.resident()
    leak = submit(client, resident)
    with intake.db.transaction() as session:  # e.g. a county-wide place: no community knows it
        session.execute(update(Petition).where(Petition.id == leak["id"]).values(community_code=None))
    (family,) = figures.petitions(intake)
    assert {tuple(s.labels.values()): s.value for s in family.samples} == {("none", "water_leak", "submitted"): 1}
