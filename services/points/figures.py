"""The programme's figures and leaderboards, read from the ledger and the redemptions.

* **Per community** (and the county, their sum): points issued (paid out of the
  community's issuing pool), returned to it (deductions), redeemed (posted into its
  supermarkets), held (waiting for a hand-over) and outstanding (what residents and
  households hold); the households that take part (earned at least once: a household's
  account, or a member's person account counting towards it) and their share of all
  households; the supermarkets' turnover.
* **All households** of a community: the number its programme was given (its register,
  ``PUT /communities/{c}/programme``) or else the households grids bound at least one
  resident to (``grids.household.resident_bound``): grids publishes no event for a
  household nobody is bound to, so that fallback undercounts and the share overstates.
* **Leaderboards** per community and month: households, and people (volunteers, party
  members — everyone who earned), by points earned from the community's pool.

The same figures are Prometheus gauges (:func:`collect`, ``ServiceSpec.collectors``),
labelled by community only (a county's hundreds), never a person or a household.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from zoneinfo import ZoneInfo

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session, aliased

from gridkit.service import Runtime

from . import awards, domain, households
from .redemptions import HANDED_OVER, STATUSES
from .supermarkets import LOCAL
from .tables import Account, Entry, Programme, Redemption, Supermarket

BOARDS = ("households", "people")
FIGURES = ("issued", "returned", "redeemed", "held", "outstanding", "households", "participating_households",
           "supermarkets", "handed_over")


def month_bounds(month: str, tz: ZoneInfo = LOCAL) -> tuple[datetime, datetime]:
    """The month ``YYYY-MM`` in the county's time, as [start, end)."""
    year, number = (int(part) for part in month.split("-"))
    start = datetime(year, number, 1, tzinfo=tz)
    end = datetime(year + (number == 12), number % 12 + 1, 1, tzinfo=tz)
    return start, end


def month_of_now(tz: ZoneInfo = LOCAL) -> str:
    return datetime.now(tz).strftime("%Y-%m")


def leaderboard(session: Session, community: str, month: str, board: str, *, limit: int = 20,
                code: str | None = None) -> list[dict]:
    """Who earned most in ``community`` in ``month``: households (their account and their
    members' together) or people; points credited from the community's issuing pool."""
    start, end = month_bounds(month, awards.local_tz(session))
    pool = aliased(Account)
    if board == "households":
        key = case((Account.kind == domain.HOUSEHOLD, Account.holder), else_=Account.household)
        kinds = (domain.HOUSEHOLD, domain.PERSON)
    else:
        key, kinds = Account.holder, (domain.PERSON,)
    points = func.sum(Entry.amount).label("points")
    query = (select(key.label("holder"), points).select_from(Entry)
             .join(Account, Account.id == Entry.account_id).join(pool, pool.id == Entry.counterparty_id)
             .where(Entry.side == "credit", Entry.phase.in_((domain.SINGLE, domain.POST)),
                    pool.kind == domain.ISSUING, Account.community == community, Account.kind.in_(kinds),
                    key.is_not(None), Entry.at >= start, Entry.at < end)
             .group_by(key).order_by(points.desc(), key).limit(limit))
    if code:
        query = query.where(Entry.code == code)
    return [{"rank": rank, "holder": holder, "points": int(total)}
            for rank, (holder, total) in enumerate(session.execute(query).all(), start=1)]


def programme_figures(session: Session, community: str | None = None) -> dict[str, dict]:
    """{community: figures} for every community points knows of (or just one): from grids'
    grids, at zero before its first account, so a dashboard shows a programme that has not
    started as 0 rather than as nothing."""
    out: dict[str, dict] = defaultdict(lambda: dict.fromkeys(FIGURES, 0))
    where = [] if community is None else [Account.community == community]
    for place in households.known_communities(session, community):
        out[place]  # noqa: B018 - the defaultdict's zero row
    totals = session.execute(select(
        Account.community, Account.kind, func.sum(Account.debits_posted), func.sum(Account.credits_posted),
        func.sum(Account.credits_posted - Account.debits_posted), func.sum(Account.debits_pending))
        .where(*where).group_by(Account.community, Account.kind)).all()
    for place, kind, debits, credits, balance, pending in totals:
        figures = out[place]
        if kind == domain.ISSUING:
            figures["issued"] += int(debits)
            figures["returned"] += int(credits)
        elif kind == domain.SUPERMARKET:
            figures["redeemed"] += int(credits)
        elif kind in (domain.PERSON, domain.HOUSEHOLD):
            figures["outstanding"] += int(balance)
            figures["held"] += int(pending)
    earned = case((Account.kind == domain.HOUSEHOLD, Account.holder), else_=Account.household)
    for place, count in session.execute(select(Account.community, func.count(func.distinct(earned))).where(
            *where, Account.kind.in_((domain.PERSON, domain.HOUSEHOLD)), Account.credits_posted > 0,
            earned.is_not(None)).group_by(Account.community)):
        out[place]["participating_households"] = int(count)
    bound = households.households_per_community(session, community)
    registered = dict(session.execute(select(Programme.community, Programme.households).where(
        Programme.households.is_not(None), *([] if community is None else [Programme.community == community]))).all())
    for place in set(bound) | set(registered):
        out[place]["households"] = int(registered.get(place) or bound.get(place) or 0)
    shops = [] if community is None else [Supermarket.community == community]
    for place, count in session.execute(select(Supermarket.community, func.count()).where(*shops)
                                        .group_by(Supermarket.community)):
        out[place]["supermarkets"] = int(count)
    for place, count in session.execute(select(Redemption.community, func.count()).where(
            Redemption.status == HANDED_OVER, *([] if community is None else [Redemption.community == community]))
            .group_by(Redemption.community)):
        out[place]["handed_over"] = int(count)
    for figures in out.values():
        figures["share"] = share(figures)
    return dict(out)


def share(figures: dict) -> float | None:
    return None if not figures["households"] else round(figures["participating_households"] / figures["households"], 4)


def county_figures(per_community: dict[str, dict]) -> dict:
    total = dict.fromkeys(FIGURES, 0)
    for figures in per_community.values():
        for name in FIGURES:
            total[name] += figures[name]
    return total | {"share": share(total), "communities": len(per_community)}


def turnover(session: Session, community: str, month: str | None = None) -> list[dict]:
    """Each supermarket of ``community``: points redeemed and redemptions handed over (in
    ``month``, or ever)."""
    when = []
    if month:
        start, end = month_bounds(month, awards.local_tz(session))
        when = [Redemption.resolved_at >= start, Redemption.resolved_at < end]
    handed = and_(Redemption.supermarket_id == Supermarket.id, Redemption.status == HANDED_OVER, *when)
    rows = session.execute(select(Supermarket.id, Supermarket.name, func.count(Redemption.id),
                                  func.coalesce(func.sum(Redemption.amount), 0))
                           .outerjoin(Redemption, handed).where(Supermarket.community == community)
                           .group_by(Supermarket.id, Supermarket.name).order_by(Supermarket.id)).all()
    return [{"supermarket_id": i, "name": name, "redemptions": int(n), "points": int(points)}
            for i, name, n, points in rows]


def collect(runtime: Runtime) -> list[GaugeMetricFamily]:
    """``ServiceSpec.collectors``: the programme's figures per community."""
    with runtime.db.sessions() as session:
        per_community = programme_figures(session)
        statuses = session.execute(select(Redemption.community, Redemption.status, func.count())
                                   .group_by(Redemption.community, Redemption.status)).all()
    families = []
    for name in FIGURES:
        family = GaugeMetricFamily(f"gridgov_points_{name}", f"The points programme: {name.replace('_', ' ')}, "
                                   "per community", labels=["community"])
        for place, figures in sorted(per_community.items()):
            family.add_metric([place], figures[name])
        families.append(family)
    redemptions = GaugeMetricFamily("gridgov_points_redemptions", "Redemptions by community and status",
                                    labels=["community", "status"])
    counts = {(place, status): count for place, status, count in statuses if status in STATUSES}
    for place in sorted(per_community):  # every status of every community, from 0
        for status in STATUSES:
            redemptions.add_metric([place, status], counts.get((place, status), 0))
    families.append(redemptions)
    return families
