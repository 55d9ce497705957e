"""The ledger's rules without a database: what each phase does to the totals, and when
a request is refused."""

from __future__ import annotations

import pytest

from points import domain
from points.domain import Invalid, Refused, Request, Totals

PERSON = Totals(credits_posted=100, debits_must_not_exceed_credits=True)
POOL = Totals(debits_posted=100)


def test_a_single_transfer_moves_posted_totals_and_a_hold_only_pending_ones():
    debit, credit = domain.move(domain.SINGLE, PERSON, Totals(), 40)
    assert (debit.balance, debit.available, credit.balance) == (60, 60, 40)
    debit, credit = domain.move(domain.PENDING, PERSON, Totals(), 40)
    assert (debit.balance, debit.available, credit.balance, credit.credits_pending) == (100, 60, 0, 40)


def test_posting_less_than_held_releases_the_rest_and_a_void_releases_it_all():
    held, incoming = domain.move(domain.PENDING, PERSON, Totals(), 40)
    debit, credit = domain.move(domain.POST, held, incoming, 30, held=40)
    assert (debit.balance, debit.available, debit.debits_pending, credit.balance, credit.credits_pending) \
        == (70, 70, 0, 30, 0)
    debit, credit = domain.move(domain.VOID, held, incoming, 40, held=40)
    assert (debit.balance, debit.available, credit.balance) == (100, 100, 0)


def test_a_limited_account_never_pays_or_holds_more_than_it_has():
    held, _ = domain.move(domain.PENDING, PERSON, Totals(), 70)
    with pytest.raises(Refused) as refused:
        domain.move(domain.SINGLE, held, Totals(), 31)
    assert refused.value.type == "exceeds-credits" and refused.value.extra["available"] == 30
    domain.move(domain.SINGLE, held, Totals(), 30)
    pool_debit, _ = domain.move(domain.SINGLE, POOL, Totals(), 10**12)  # a pool goes below zero
    assert pool_debit.balance == -(10**12) - 100


def test_totals_past_a_bigint_are_refused():
    full = Totals(credits_posted=2**63 - 5)
    with pytest.raises(Refused) as refused:
        domain.move(domain.SINGLE, POOL, full, 10)
    assert refused.value.type == "overflows"


@pytest.mark.parametrize("amount", [0, -1, 10**12 + 1, 1.5, True])
def test_amounts_are_whole_points_within_bounds(amount):
    with pytest.raises(Invalid) as invalid:
        domain.check_new(Request(id="x", debit_account_id=1, credit_account_id=2, amount=amount, code="award"))
    assert invalid.value.field == "amount"


def test_the_same_id_compares_every_field_of_the_transfer():
    asked = domain.new_shape(Request(id="x", debit_account_id=1, credit_account_id=2, amount=5, code="award"))
    domain.same_or_refused(asked, asked, "x")
    other = domain.new_shape(Request(id="x", debit_account_id=1, credit_account_id=3, amount=6, code="award",
                                     memo="m"))
    with pytest.raises(Refused) as refused:
        domain.same_or_refused(asked, other, "x")
    assert refused.value.extra["fields"] == ["credit_account_id", "amount", "memo"]


def test_a_resolution_takes_what_it_leaves_out_from_its_hold():
    hold = domain.new_shape(Request(id="h", debit_account_id=1, credit_account_id=2, amount=50, code="redemption",
                                    pending=True, timeout_seconds=60))
    post = domain.resolution_shape(Request(id="p", post_pending_id="h"), hold)
    assert (post.phase, post.amount, post.debit_account_id, post.code, post.pending_id) == ("post", 50, 1,
                                                                                             "redemption", "h")
    assert domain.resolution_shape(Request(id="p", post_pending_id="h", amount=20), hold).amount == 20
    for request, field in ((Request(id="p", post_pending_id="h", amount=51), "amount"),
                           (Request(id="v", void_pending_id="h", amount=20), "amount"),
                           (Request(id="p", post_pending_id="h", debit_account_id=9), "debit_account_id")):
        with pytest.raises(Invalid) as invalid:
            domain.resolution_shape(request, hold)
        assert invalid.value.field == field
