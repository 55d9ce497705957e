from datetime import UTC, date, datetime

from gridkit.auth import Grant, Principal
from grids import domain

PARENTS = {3: 2, 2: 1, 1: None, 5: 4, 4: None}


def principal(*grants):
    return Principal("u", "user", tuple(Grant(role, scope) for role, scope in grants))


def test_a_grid_scope_covers_the_grid_and_its_descendants_only():
    assert domain.is_within(3, "grid:1", PARENTS.get)
    assert domain.is_within(1, "grid:1", PARENTS.get)
    assert not domain.is_within(1, "grid:3", PARENTS.get)
    assert not domain.is_within(5, "grid:1", PARENTS.get)
    assert domain.is_within(5, "county", PARENTS.get)
    assert not domain.is_within(5, "department:police", PARENTS.get)


def test_a_cycle_in_the_parent_chain_does_not_hang():
    assert not domain.is_within(1, "grid:9", {1: 2, 2: 1}.get)


def test_county_admins_act_anywhere_and_subtree_admins_below_their_grid():
    assert domain.may_act_on(principal(("county_admin", "county")), None, domain.GRID_EDITORS, PARENTS.get)
    community = principal(("community_admin", "grid:2"))
    assert domain.may_act_on(community, 3, domain.GRID_EDITORS, PARENTS.get)
    assert not domain.may_act_on(community, 1, domain.GRID_EDITORS, PARENTS.get)
    assert not domain.may_act_on(community, None, domain.GRID_EDITORS, PARENTS.get)
    assert not domain.may_act_on(principal(("grid_worker", "grid:2")), 3, domain.GRID_EDITORS, PARENTS.get)


def test_a_grid_head_staffs_workers_but_not_heads():
    head = principal(("grid_head", "grid:2"))
    assert domain.may_staff(head, 3, "grid_worker", PARENTS.get)
    assert not domain.may_staff(head, 3, "grid_head", PARENTS.get)
    assert not domain.may_staff(head, 5, "grid_worker", PARENTS.get)


def test_a_query_date_is_the_end_of_the_day_and_a_validity_date_its_start():
    assert domain.instant_of(date(2025, 1, 1)).hour == 23
    assert domain.instant_of(date(2025, 1, 1), end_of_day=False) == datetime(2025, 1, 1, tzinfo=UTC)
    assert domain.instant_of(datetime(2025, 1, 1, 8)).tzinfo is UTC


def test_overlaps_and_stray_children_are_findings_on_the_boundary():
    from grids.testing import rect

    findings = domain.Findings()
    geom = domain.parse(rect(0, 0, 0.01, 0.01), findings)
    other = domain.parse(rect(0.005, 0, 0.015, 0.01), findings)
    child = domain.parse(rect(0.0, 0.0, 0.02, 0.005), findings)
    result = domain.check_boundary("A", geom, parent=None, neighbours=[("B", other)], children=[("A-1", child)])
    assert result.overlaps[0]["grids"] == ["A", "B"] and result.overlaps[0]["overlap_m2"] > 600_000
    assert any("A-1" in message for message in result.errors["boundary"])
    assert domain.parse({"type": "Polygon"}, findings) is None and "boundary" in findings.errors
