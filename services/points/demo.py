"""The demo county's points programme (``make run``): a supermarket per community with a
catalogue, and a few months of awards and redemptions, so the figures, leaderboards and
statements show a living programme.

Called by the kit's demo (``ServiceSpec.demo``) with the county's communities and the
demo resident's user id; everything goes through the use cases (ledger, supermarkets,
redemptions), each month of a community in one transaction, with the moments it
happened at. Deterministic (a seeded generator) and idempotent: awards have their
source, redemptions their id, and a community that has its supermarket is skipped.

Awards are earning's (awards.py): each community gets the award rules a community would
set up (a clean household, an activity attended, a resolved petition rated 4 or more),
and the demo's awards are those rules' awards — code ``award``, source
``award:<rule>:<fact>`` and memo as :func:`awards.grant` writes them — dated in the past
months, which ``awards.award_for`` (it awards now) cannot do. No notice goes out for
this past: nobody is told of four months of history at start-up.

The households are a sample (at most :data:`HOUSEHOLDS` per community, ids
``demo-<community>-<n>``: grids binds no resident in the demo county), and each
community's programme is told it has as many households as make that sample the
seeds' 84 % (Chengkou county: 58,000 households, 84 % of all).
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select

from gridkit.service import Runtime

from . import awards, domain, ledger, redemptions, supermarkets
from .domain import Request
from .redemptions import Line
from .tables import Redemption, Supermarket, utcnow

COMMUNITIES = 8  # with a supermarket, at most
HOUSEHOLDS = 24  # taking part, per community
MONTHS = 4
SHARE = 0.84
CATALOGUE = (  # name, points, stock, monthly limit (per household for the dear ones)
    ("洗衣粉 1kg", 30, 60, None), ("食用油 5L", 120, 20, 1), ("大米 5kg", 100, 30, 1), ("毛巾", 20, 80, None),
    ("牙膏", 15, 80, None), ("酱油", 12, 60, None), ("洗洁精", 18, 60, None), ("肥皂", 8, 100, 4),
)
DEMO_NAMESPACE = uuid.UUID("2f6b1d0c-8a4e-4c3b-9e7d-5a1f0b2c3d44")
RULES = (  # reason (awards.SOURCES), the event, its condition, points
    ("hygiene", "points.household.inspected", {"passed": {"eq": True}}, 20),
    ("activity", "points.activity.attended", {}, 10),
    ("petition", "dispatch.case.closed", {"rating": {"gte": 4}}, 15),
)


def seed(runtime: Runtime, context: dict) -> dict:
    """``context``: {"communities": [{"code", "name"}], "resident_id": str | None}. Returns
    the people identity should create (the keeper of the first supermarket) and the
    accounts to show."""
    rng = random.Random(7)
    communities = context.get("communities", [])[:COMMUNITIES]
    first: int | None = None
    for place in communities:
        supermarket_id = seed_community(runtime, place, rng, context.get("resident_id") if first is None else None)
        first = first or supermarket_id
    if first is None:
        return {}
    return {"people": [{"username": "keeper", "name": "积分超市管理员", "kind": "staff", "password": "gridgov-demo",
                        "grants": [("supermarket_keeper", f"supermarket:{first}")]}],
            "accounts": [{"role": "supermarket_keeper", "phone": "username keeper", "password": "gridgov-demo",
                          "note": f'(supermarket {first}; log in with {{"username": "keeper"}})'}]}


def demo_id(*parts) -> str:
    return str(uuid.uuid5(DEMO_NAMESPACE, ":".join(str(p) for p in parts)))


def seed_community(runtime: Runtime, place: dict, rng: random.Random, resident_id: str | None) -> int:
    community = place["code"]
    with runtime.db.transaction() as session:
        found = session.scalars(select(Supermarket).where(Supermarket.community == community)).first()
        if found is not None:
            return found.id
        shop = supermarkets.open_supermarket(session, community=community, name=f"{place['name']}积分超市")
        items = [supermarkets.add_item(session, shop, name=name, price=price, stock=stock, monthly_limit=limit,
                                       limit_per=supermarkets.HOUSEHOLD if limit else supermarkets.PERSON).id
                 for name, price, stock, limit in CATALOGUE]
        supermarkets.set_programme(session, community, households=round(HOUSEHOLDS / SHARE))
        rules = {reason: awards.add_rule(session, rule_id=demo_id(community, "rule", reason), community=community,
                                         event=event, condition=condition, points=points, cap=None, period=None,
                                         memo="demo county", by="demo")[0]
                 for reason, event, condition, points in RULES}
        pool, _ = ledger.open_account(session, kind=domain.ISSUING, community=community)
        people: list[tuple[str, int, str]] = []  # (user id, account id, household)
        households: list[tuple[str, int]] = []
        for n in range(1, HOUSEHOLDS + 1):
            household = f"demo-{community}-{n:03d}"
            account, _ = ledger.open_account(session, kind=domain.HOUSEHOLD, community=community, holder=household)
            households.append((household, account.id))
            for m in range(rng.randint(1, 3)):
                user = resident_id if (n, m) == (1, 0) and resident_id else f"demo-{community}-{n:03d}-{m}"
                person, _ = ledger.open_account(session, kind=domain.PERSON, community=community, holder=user,
                                                household=household)
                people.append((user, person.id, household))
        shop_id, pool_id = shop.id, pool.id

    today = utcnow()
    for back in range(MONTHS - 1, -1, -1):
        month_start = (today.replace(day=1) - timedelta(days=31 * back)).replace(day=1, hour=2, minute=0, second=0,
                                                                                 microsecond=0)
        with runtime.db.transaction() as session:
            award_month(session, rng, rules, pool_id, month_start, households, people, current=back == 0,
                        resident_id=resident_id)
        redeem_month(runtime, rng, shop_id, items, month_start, people, current=back == 0, resident_id=resident_id)
    return shop_id


def at(month_start: datetime, rng: random.Random, current: bool) -> datetime:
    """A moment in the month (before now, in the current one)."""
    now = utcnow()
    latest = now - timedelta(hours=2) if current else month_start + timedelta(days=26)
    span = max((latest - month_start).total_seconds(), 60)
    return min(month_start + timedelta(seconds=rng.uniform(0, span)), now)  # never ahead of now


def award_month(session, rng, rules, pool_id, month_start, households, people, *, current,
                resident_id) -> None:
    month = month_start.strftime("%Y-%m")
    for household, account_id in households:  # the monthly hygiene inspection (清洁户): most pass
        if rng.random() < 0.8:
            give(session, pool_id, account_id, rules["hygiene"], f"demo-inspection-{household}-{month}",
                 at(month_start, rng, current))
    for user, account_id, _ in people:  # petitions resolved and activities attended: some, some months
        for reason in ("petition", "activity"):
            if rng.random() < 0.45 or user == resident_id:  # she has points to show
                give(session, pool_id, account_id, rules[reason], f"demo-{reason}-{user}-{month}",
                     at(month_start, rng, current))


def give(session, pool_id: int, account_id: int, rule: dict, fact: str, when: datetime) -> None:
    """The rule's award for ``fact``, as awards.grant makes it, on ``when``."""
    source = f"award:{rule['id']}:{fact}"
    reason = awards.SOURCES[rule["event"]].reason
    ledger.transfer(session, Request(id=ledger.derived_id(source), debit_account_id=pool_id,
                                     credit_account_id=account_id, amount=rule["points"], code="award",
                                     source=source, memo=f"{reason} ({rule['id']})"), by=None, now=when)


def redeem_month(runtime, rng, shop_id, items, month_start, people, *, current, resident_id) -> None:
    for user, _, _ in people:
        if rng.random() > 0.3 and user != resident_id:
            continue
        basket = [Line(item, rng.randint(1, 2)) for item in sorted(rng.sample(items, rng.randint(1, 2)))]
        fate, hours = rng.random(), rng.randint(1, 30)
        if user == resident_id:  # the demo resident: a cheap piece a month, fetched; this month's waits
            basket, fate = [Line(items[-1], 1)], 0.5
        waits = current and (user == resident_id or fate < 0.3)
        # What waits for its hand-over was picked in the last hours (its hold is still running).
        when = utcnow() - timedelta(minutes=rng.randint(5, 600)) if waits else at(month_start, rng, current)
        later = min(when + timedelta(hours=hours), utcnow())
        redemption_id = demo_id(user, month_start.date())
        try:
            # Each in transactions of its own: a basket past what she has, or past a limit, is
            # refused and rolled back whole (a savepoint would keep the ledger's rows); a hold
            # is resolved once it is written (the ledger writes it at commit).
            with runtime.db.transaction() as session:
                redemptions.redeem(session, redemption_id=redemption_id, supermarket=session.get(Supermarket, shop_id),
                                   resident=user, lines=basket, now=when)
            if waits or (not current and 0.1 <= fate < 0.15):
                continue  # waiting for its hand-over (the code is in the app), or never fetched (expires)
            with runtime.db.transaction() as session:
                redemption = session.get(Redemption, redemption_id)
                if fate < 0.1:
                    redemptions.cancel(session, redemption, by=user, now=when + timedelta(minutes=20))
                else:
                    redemptions.hand_over(session, redemption, by=f"keeper-{shop_id}", now=later)
        except (domain.Refused, domain.Invalid):
            continue
