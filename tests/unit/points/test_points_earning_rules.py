"""Award rules' conditions, periods and expiry's cutoff, without servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from points import awards
from points.domain import Invalid

SHANGHAI = ZoneInfo("Asia/Shanghai")
CLOSED = "dispatch.case.closed"


def test_every_test_of_a_condition_must_hold():
    condition = {"outcome": {"in": ["rated", "rating_timeout"]}, "rating": {"gte": 4, "lte": 5}}
    assert awards.holds(condition, {"outcome": "rated", "rating": 4})
    assert not awards.holds(condition, {"outcome": "rated", "rating": 3})
    assert not awards.holds(condition, {"outcome": "withdrawn", "rating": 5})
    assert not awards.holds(condition, {"outcome": "rating_timeout", "rating": None})  # no rating is not ≥ 4
    assert awards.holds({}, {"anything": 1})
    assert awards.holds({"passed": {"eq": True}}, {"passed": True})
    assert not awards.holds({"passed": {"eq": True}}, {"passed": False})
    assert awards.holds({"outcome": {"ne": "merged"}}, {"outcome": "rated"})
    assert not awards.holds({"outcome": {"gt": 3}}, {"outcome": "rated"})  # never a TypeError in a consumer


@pytest.mark.parametrize(("event", "condition", "field"), [
    ("dispatch.case.opened", {}, "event"),
    (CLOSED, {"colour": {"eq": "red"}}, "condition"),
    (CLOSED, {"rating": {"about": 4}}, "condition"),
    (CLOSED, {"rating": {"gte": "4"}}, "condition"),
    (CLOSED, {"rating": {"gte": True}}, "condition"),
    (CLOSED, {"outcome": {"in": "rated"}}, "condition"),
    (CLOSED, {"rating": 4}, "condition"),
    (CLOSED, {"rating": {}}, "condition"),
])
def test_a_condition_that_cannot_be_read_is_invalid_naming_the_field(event, condition, field):
    with pytest.raises(Invalid) as refused:
        awards.check_condition(event, condition)
    assert refused.value.field == field


def test_every_source_names_fields_its_event_has():
    for name, source in awards.SOURCES.items():
        named = {*source.fact, source.community, source.person or source.household}
        assert named <= source.fields, name


def test_periods_are_local_time():
    at = datetime(2026, 12, 31, 16, 30, tzinfo=UTC)  # 1 Jan 2027 00:30 in Shanghai
    assert [awards.period_of(p, at, SHANGHAI) for p in awards.PERIODS] == ["2027-01-01", "2026-W53", "2027-01", "2027"]
    assert awards.period_of("day", at - timedelta(hours=1), SHANGHAI) == "2026-12-31"


def test_the_expiry_cutoff_is_local_midnight_n_months_back():
    assert awards.cutoff(datetime(2027, 3, 31, 4, tzinfo=UTC), 1, SHANGHAI) == datetime(2027, 2, 27, 16, tzinfo=UTC)
    assert awards.cutoff(datetime(2027, 1, 15, 4, tzinfo=UTC), 2, SHANGHAI) == datetime(2026, 11, 14, 16, tzinfo=UTC)
    assert awards.cutoff(datetime(2027, 1, 15, 4, tzinfo=UTC), 13, SHANGHAI) == datetime(2025, 12, 14, 16, tzinfo=UTC)
