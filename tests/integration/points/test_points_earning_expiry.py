"""Expiry after N months on PostgreSQL: off by default; when a community chooses it, points
earned before the cutoff and not spent move to its expiry account (never vanish), once
however often the sweep runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from points import awards
from points.events import ACCOUNT_EXPIRED
from points.testing import ADMIN, COMMUNITY, balances, issue, open_account

from .earning import balance, data_of, transfers

LATER = timedelta(days=100)


def test_points_do_not_expire_unless_the_community_chooses_it(points):
    person = open_account(points)
    issue(points, person, 40)
    assert awards.expire(points.db, datetime.now(UTC) + timedelta(days=3650)) == 0
    assert balances(points, person) == [40]


def test_unspent_points_past_the_months_move_to_the_expiry_account_once(points, client, tokens):
    client.put(f"/communities/{COMMUNITY}/earning-settings", json={"expiry_months": 3}, headers=tokens.header(ADMIN))
    spender, saver = open_account(points, holder="spender"), open_account(points, holder="saver")
    shop = open_account(points, "supermarket")
    issue(points, spender, 50)
    issue(points, saver, 50)
    from points import ledger
    from points.domain import Request
    from points.testing import new_id

    ledger.submit(points.db, Request(id=new_id(), debit_account_id=spender, credit_account_id=shop, amount=30,
                                     code="redemption"), by=None)
    now = datetime.now(UTC)
    assert awards.expire(points.db, now + timedelta(days=30)) == 0  # not yet
    assert awards.expire(points.db, now + LATER) == 2
    assert awards.expire(points.db, now + LATER) == 0  # the same sweep again: nothing left
    assert awards.expire(points.db, now + LATER + timedelta(days=1)) == 0
    assert balances(points, spender, saver) == [0, 0]
    assert balance(points, "expiry", "") == 70  # 20 + 50: moved, not gone
    assert sorted(t.amount for t in transfers(points, "expiry")) == [20, 50]
    notices = data_of(points, ACCOUNT_EXPIRED)
    assert sorted((n["holder"], n["amount"], n["balance"], n["notify"]) for n in notices) == [
        ("saver", 50, 0, ["saver"]), ("spender", 20, 0, ["spender"])]

    issue(points, saver, 5)  # earned after the sweep began: expires at its own time, once
    assert awards.expire(points.db, now + LATER + timedelta(days=2)) == 1
    assert balances(points, saver) == [0] and balance(points, "expiry", "") == 75

