"""Dispatch's rules without a database: deadlines, lights, transitions, scopes, 三率."""

import logging
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dispatch import domain
from dispatch.domain import (
    GREEN,
    NATIONAL,
    RED,
    SHANGHAI,
    YELLOW,
    Place,
    Refused,
    WorkingCalendar,
    due_after,
    time_between,
    traffic_light,
    warn_at,
)
from gridkit.auth import Grant, Principal


def sh(*args) -> datetime:
    """A Shanghai wall-clock time (2025-01-06 is a Monday)."""
    return datetime(*args, tzinfo=SHANGHAI)


def test_calendar_deadlines_simply_add_hours():
    start = datetime(2025, 1, 4, 23, 0, tzinfo=UTC)
    assert due_after(start, 30, working=None) == start + timedelta(hours=30)


def test_working_hours_inside_one_day_stay_on_that_day():
    assert due_after(sh(2025, 1, 6, 10), 3, working=NATIONAL) == sh(2025, 1, 6, 13)


def test_working_hours_left_at_friday_evening_continue_on_monday_morning():
    assert due_after(sh(2025, 1, 10, 17), 2, working=NATIONAL) == sh(2025, 1, 13, 10)


def test_a_petition_filed_at_night_or_on_a_weekend_starts_counting_at_nine():
    assert due_after(sh(2025, 1, 6, 7, 30), 1, working=NATIONAL) == sh(2025, 1, 6, 10)
    assert due_after(sh(2025, 1, 11, 15), 0.5, working=NATIONAL) == sh(2025, 1, 13, 9, 30)
    assert due_after(sh(2025, 1, 6, 19), 9, working=NATIONAL) == sh(2025, 1, 7, 18)


def test_a_working_week_is_forty_five_hours():
    start = sh(2025, 1, 6, 9)
    assert due_after(start, 45, working=NATIONAL) == sh(2025, 1, 10, 18)
    assert time_between(start, sh(2025, 1, 13, 9), working=NATIONAL) == timedelta(hours=45)


def test_the_light_is_green_before_eighty_percent_yellow_until_the_deadline_then_red():
    start = datetime(2025, 1, 1, tzinfo=UTC)
    due = start + timedelta(hours=10)
    assert traffic_light(start, due, start + timedelta(hours=7, minutes=59), None)[0] == GREEN
    assert traffic_light(start, due, start + timedelta(hours=8), None) == (YELLOW, 0.8)
    assert traffic_light(start, due, due, None)[0] == YELLOW
    assert traffic_light(start, due, due + timedelta(seconds=1), None)[0] == RED
    assert traffic_light(start, None, due, None) == (None, None)


def test_the_light_counts_working_time_over_a_weekend():
    start, due = sh(2025, 1, 10, 9), sh(2025, 1, 13, 18)  # Friday 9:00 → Monday 18:00: 18 working hours
    assert traffic_light(start, due, sh(2025, 1, 12, 23), NATIONAL)[0] == GREEN  # Sunday night: 9 h used
    assert traffic_light(start, due, sh(2025, 1, 13, 16), NATIONAL)[0] == YELLOW  # 16 h of 18


def test_national_day_is_no_working_time_and_the_make_up_saturday_is():
    # 2026: National Day and the Mid-Autumn Festival give 1–7 October off; Saturday
    # 10 October is a 调休 make-up working day, Sunday 20 September another.
    assert not NATIONAL.is_working_day(date(2026, 10, 1)) and NATIONAL.is_working_day(date(2026, 10, 10))
    assert NATIONAL.is_working_day(date(2026, 9, 20)) and not NATIONAL.is_working_day(date(2026, 9, 25))
    # From Wednesday 30 September 10:00: 8 h that day, none from 1 to 7 October, then
    # Thursday 8, Friday 9 and the make-up Saturday 10 October.
    start = sh(2026, 9, 30, 10)
    assert due_after(start, 8, working=NATIONAL) == sh(2026, 9, 30, 18)
    assert due_after(start, 9, working=NATIONAL) == sh(2026, 10, 8, 10)  # not 1 October
    assert due_after(start, 8 + 9 + 9 + 8, working=NATIONAL) == sh(2026, 10, 10, 17)
    assert due_after(sh(2026, 10, 9, 17), 2, working=NATIONAL) == sh(2026, 10, 10, 10)  # not Monday 12th
    assert time_between(sh(2026, 9, 30, 18), sh(2026, 10, 8, 9), working=NATIONAL) == timedelta(0)
    assert warn_at(start, sh(2026, 10, 8, 18), NATIONAL) == sh(2026, 10, 8, 14, 36)  # 80 % of 17 h


def test_the_county_adds_its_own_day_off_and_working_day():
    festival = WorkingCalendar(SHANGHAI, days_off=[date(2026, 4, 20)])  # a local festival, a Monday
    assert due_after(sh(2026, 4, 17, 17), 2, working=NATIONAL) == sh(2026, 4, 20, 10)
    assert due_after(sh(2026, 4, 17, 17), 2, working=festival) == sh(2026, 4, 21, 10)
    make_up = WorkingCalendar(SHANGHAI, working_days=[date(2026, 4, 18)])  # works that Saturday
    assert due_after(sh(2026, 4, 17, 17), 2, working=make_up) == sh(2026, 4, 18, 10)


def test_working_hours_are_nine_to_six_local_time():
    urumqi = ZoneInfo("Asia/Urumqi")  # UTC+6: 09:00 there is 11:00 in Beijing
    calendar = WorkingCalendar(urumqi)
    start = datetime(2025, 1, 6, 9, tzinfo=urumqi)
    assert due_after(start, 9, working=calendar) == datetime(2025, 1, 6, 18, tzinfo=urumqi)
    assert due_after(datetime(2025, 1, 6, 8, tzinfo=urumqi), 1, working=calendar) \
        == datetime(2025, 1, 6, 10, tzinfo=urumqi)


def test_a_year_the_national_calendar_does_not_know_counts_monday_to_friday_with_a_warning(caplog):
    far = 2999  # no release of the library knows it
    domain._UNKNOWN_YEARS.discard(far)
    domain.national_working_day.cache_clear()
    monday = next(date(far, 10, d) for d in range(1, 8) if date(far, 10, d).weekday() == 0)
    with caplog.at_level(logging.WARNING, logger="dispatch.domain"):
        assert domain.national_working_day(monday) is None
        assert NATIONAL.is_working_day(monday) and NATIONAL.is_working_day(monday + timedelta(days=4))
        assert not NATIONAL.is_working_day(monday + timedelta(days=5))
    assert [r.year for r in caplog.records if "does not know this year" in r.getMessage()] == [far]  # once
    assert not WorkingCalendar(days_off=[monday]).is_working_day(monday)
    assert WorkingCalendar(working_days=[monday + timedelta(days=5)]).is_working_day(monday + timedelta(days=5))


def test_a_refused_transition_says_why():
    with pytest.raises(Refused, match="only an offered case can be claimed; this one is claimed"):
        domain.check("claim", domain.CLAIMED)
    with pytest.raises(Refused, match="withdrawn only while nobody has claimed it"):
        domain.check("withdraw", domain.CLAIMED)
    domain.check("withdraw", domain.OFFERED)


def test_every_action_names_only_known_states():
    for states in domain.ALLOWED_FROM.values():
        assert set(states) <= set(domain.STATES)


def principal(*grants) -> Principal:
    return Principal("u", "user", tuple(Grant(role, scope) for role, scope in grants))


def test_scopes_cover_grid_subtrees_divisions_departments_and_the_county():
    place = Place(grid_chain=(12, 11), divisions=("DL-01-01", "DL-01", "DL"), departments=("police",))
    assert domain.in_scope(principal(("grid_worker", "grid:11")), place, domain.STAFF)
    assert not domain.in_scope(principal(("grid_worker", "grid:13")), place, domain.STAFF)
    assert domain.in_scope(principal(("community_admin", "division:DL-01-01")), place, domain.ADMINS)
    assert not domain.in_scope(principal(("community_admin", "division:DL-01-02")), place, domain.ADMINS)
    assert domain.in_scope(principal(("street_admin", "division:DL-01")), place, domain.ADMINS)
    assert domain.in_scope(principal(("dept_officer", "department:police")), place, domain.STAFF)
    assert not domain.in_scope(principal(("dept_officer", "department:urban")), place, domain.STAFF)
    assert domain.in_scope(principal(("county_admin", "county")), place, domain.ADMINS)
    assert not domain.in_scope(principal(("resident", "county")), place, domain.STAFF)


def test_the_three_rates_come_from_the_facts_of_each_group():
    F = domain.CaseFacts
    rows = domain.figures([
        F("a", True, True, 60, True, 5, False),
        F("a", True, False, 600, True, 2, False),
        F("a", True, True, 120, False, None, True, supervised=True),
        F("a", False, False, None, False, None, False),
        F("b", True, False, None, False, None, True),
    ])
    a, b = rows
    assert a == {"key": "a", "opened": 4, "offered": 3, "claimed_in_time": 2, "response_rate": 0.6667,
                 "resolved": 2, "resolution_rate": 0.5, "rated": 2, "satisfied": 1, "satisfaction_rate": 0.5,
                 "median_claim_seconds": 120, "overdue": 1, "supervised": 1}
    assert b["response_rate"] == 0.0 and b["satisfaction_rate"] is None and b["median_claim_seconds"] is None
