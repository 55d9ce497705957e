"""The supermarkets' plain rules: months in the county's time, hand-over codes, baskets,
whom a monthly limit counts."""

from datetime import UTC, datetime

import pytest

from points import domain, redemptions, supermarkets
from points.figures import month_bounds
from points.redemptions import Line


def test_a_month_is_the_countys_a_redemption_just_after_midnight_on_the_first_counts_in_the_new_one():
    assert supermarkets.month_of(datetime(2026, 11, 30, 16, 30, tzinfo=UTC)) == "2026-12"  # 00:30 in Shanghai
    assert supermarkets.month_of(datetime(2026, 11, 30, 15, 59, tzinfo=UTC)) == "2026-11"
    start, end = month_bounds("2026-12")
    assert (start.astimezone(UTC), end.astimezone(UTC)) == (datetime(2026, 11, 30, 16, tzinfo=UTC),
                                                            datetime(2026, 12, 31, 16, tzinfo=UTC))


def test_codes_are_read_without_ambiguity_and_typed_in_any_case():
    codes = {redemptions.new_code() for _ in range(500)}
    assert len(codes) == 500 and all(len(c) == 8 and set(c) <= set(redemptions.CODE_ALPHABET) for c in codes)
    assert not set("01IOL") & set(redemptions.CODE_ALPHABET)
    assert redemptions.normal_code("ab3d-ef 7h") == "AB3DEF7H"


@pytest.mark.parametrize("lines", [[], [Line(1, 0)], [Line(1, -1)], [Line(1, 1.0)], [Line(1, 2), Line(1, 3)],
                                   [Line(i, 1) for i in range(51)], [Line(1, 1001)]])
def test_bad_baskets_are_invalid(lines):
    with pytest.raises(domain.Invalid) as refused:
        redemptions.check_lines(lines)
    assert refused.value.field == "lines"


def test_a_household_limit_counts_the_household_and_a_person_without_one_alone():
    assert redemptions.taker("household", "u1", "h-7") == "household:h-7"
    assert redemptions.taker("household", "u1", None) == "person:u1"
    assert redemptions.taker("person", "u1", "h-7") == "person:u1"


@pytest.mark.parametrize("change, field", [({"price": 0}, "price"), ({"stock": -1}, "stock"),
                                           ({"monthly_limit": 0}, "monthly_limit"), ({"limit_per": "grid"}, "limit_per")])
def test_an_item_needs_a_positive_price_stock_and_limit(change, field):
    with pytest.raises(domain.Invalid) as refused:
        supermarkets.check_item(**change)
    assert refused.value.field == field
