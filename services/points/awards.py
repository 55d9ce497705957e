"""Earning: a community's settings and award rules, the awards they make from bus events,
manual awards and deductions with a second approver, and the expiry of old points.

An award rule says: when an event of this type, in this community, meets the condition,
give this many points to whom the event names, at most ``cap`` per person (or household)
per period. Which events can award, and what in each names the community, the earner
and the fact, is :data:`SOURCES`: a new kind of fact (volunteer service orders) plugs in
with one line there and rules written as data, no other code.

Each fact awards at most once per rule, whatever redelivery or duplication happens: the
transfer's source is ``award:<rule>:<fact>`` (unique in the ledger) and its id is derived
from it (UUIDv5), so a replay finds the first transfer and moves nothing. A fact is the
event's own key (a case, an attendance, an inspection), not the envelope id, so the same
fact published twice under two event ids still awards once.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from contracts.dispatch import CASE_CLOSED
from gridkit import audit
from gridkit.auth import Principal
from gridkit.db import Database, keep_tidy
from gridkit.events import EventType

from . import domain, households, ledger
from .domain import Invalid, Refused, Request
from .events import ACCOUNT_EXPIRED, ACTIVITY_ATTENDED, AWARD_GRANTED, HOUSEHOLD_INSPECTED
from .tables import (
    Account,
    Adjustment,
    AwardRule,
    AwardTally,
    EarningSettings,
    Entry,
    aware,
    outbox,
    utcnow,
)

log = logging.getLogger(__name__)

TZ = "points.tz"  # session.info: the local time zone (periods and months are local)


def local_tz(session: Session) -> ZoneInfo:
    return session.info.get(TZ) or ZoneInfo("Asia/Shanghai")


# --------------------------------------------------------------------------
# settings
# --------------------------------------------------------------------------

SETTINGS = ("pool_by_household", "hygiene_to", "hygiene_pass_mark", "approval_threshold", "expiry_months")
DEFAULTS = {"pool_by_household": False, "hygiene_to": "household", "hygiene_pass_mark": 80,
            "approval_threshold": 100, "expiry_months": None}


def settings_of(session: Session, community: str) -> dict:
    row = session.get(EarningSettings, community)
    return {"community": community} | ({name: getattr(row, name) for name in SETTINGS} if row else dict(DEFAULTS))


def change_settings(session: Session, community: str, changes: dict, *, by: str) -> dict:
    row = session.get(EarningSettings, community, with_for_update=True)
    if row is None:
        row = EarningSettings(community=community, **DEFAULTS)
        session.add(row)
    for name, value in changes.items():
        setattr(row, name, value)
    row.updated_at, row.updated_by = utcnow(), by
    session.flush()
    return settings_of(session, community)


# --------------------------------------------------------------------------
# what can award
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """An event that can award: which of its fields name the fact (one award per rule per
    fact), the community, and who earns (a person, or a household)."""

    event: EventType
    fact: tuple[str, ...]
    reason: str  # for the notice: what earned it
    person: str | None = None
    household: str | None = None
    community: str = "community"

    @property
    def fields(self) -> set[str]:
        return set(self.event.schema().fields)


SOURCES: dict[str, Source] = {s.event.name: s for s in (
    # a resident's petition confirmed valid and resolved: the case closed (rated, or the
    # rating window passed); the reporter earns
    Source(CASE_CLOSED, fact=("case_id",), reason="petition", person="reporter_id"),
    Source(ACTIVITY_ATTENDED, fact=("activity_id", "user_id"), reason="activity", person="user_id"),
    Source(HOUSEHOLD_INSPECTED, fact=("inspection_id",), reason="hygiene", household="household_id"),
    # volunteer service orders (later): Source(ORDER_CLOSED, fact=("order_id",), reason="service_order",
    # person="volunteer_id"), and a rule {"rating": {"gte": 4}}
)}

OPS = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "in": lambda a, b: a in b,
    "gt": lambda a, b: a is not None and a > b, "gte": lambda a, b: a is not None and a >= b,
    "lt": lambda a, b: a is not None and a < b, "lte": lambda a, b: a is not None and a <= b,
}
PERIODS = ("day", "week", "month", "year")


def check_condition(event: str, condition: dict) -> None:
    """Invalid naming the field when the condition cannot be read for this event."""
    source = SOURCES.get(event)
    if source is None:
        raise Invalid("event", f"not an event that can award; one of {', '.join(sorted(SOURCES))}")
    for name, test in condition.items():
        if name not in source.fields:
            raise Invalid("condition", f"{event} has no field {name!r}")
        if not isinstance(test, dict) or not test:
            raise Invalid("condition", f"{name}: an object of operators, e.g. {{\"gte\": 4}}")
        for op, value in test.items():
            if op not in OPS:
                raise Invalid("condition", f"{name}: unknown operator {op!r}; one of {', '.join(OPS)}")
            if op == "in" and not isinstance(value, list):
                raise Invalid("condition", f"{name}: 'in' takes a list")
            if op in ("gt", "gte", "lt", "lte") and (type(value) not in (int, float)):
                raise Invalid("condition", f"{name}: {op!r} takes a number")


def holds(condition: dict, data: dict) -> bool:
    try:
        return all(OPS[op](data.get(name), value) for name, test in condition.items() for op, value in test.items())
    except TypeError:  # a number compared with a text or a moment: the condition does not hold
        return False


def period_of(period: str, at: datetime, tz: ZoneInfo) -> str:
    local = aware(at).astimezone(tz)  # type: ignore[union-attr]
    if period == "day":
        return local.strftime("%Y-%m-%d")
    if period == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return local.strftime("%Y-%m")
    return local.strftime("%Y")


# --------------------------------------------------------------------------
# rules
# --------------------------------------------------------------------------


def rule_view(rule: AwardRule) -> dict:
    return {"id": rule.id, "community": rule.community, "event": rule.event, "condition": json.loads(rule.condition),
            "points": rule.points, "cap": rule.cap, "period": rule.period, "active": rule.active,
            "memo": rule.memo, "created_at": aware(rule.created_at), "created_by": rule.created_by}


def add_rule(session: Session, *, rule_id: str, community: str, event: str, condition: dict, points: int,
             cap: int | None, period: str | None, memo: str | None, by: str) -> tuple[dict, bool]:
    """A new rule, or the one with this id again (same fields: a replay; else refused)."""
    check_condition(event, condition)
    domain.check_amount(points, "points")
    if (cap is None) != (period is None):
        raise Invalid("period" if period is None else "cap", "a cap comes with its period, and a period with its cap")
    domain.check_amount(cap, "cap")
    asked = {"community": community, "event": event, "condition": condition, "points": points, "cap": cap,
             "period": period, "memo": memo}
    found = session.get(AwardRule, rule_id)
    if found is not None:
        view = rule_view(found)
        different = [k for k, v in asked.items() if view[k] != v]
        if different:
            raise Refused("exists-with-different-fields", f"rule {rule_id} exists with different fields: "
                          f"{', '.join(different)}", fields=different)
        return view, False
    rule = AwardRule(id=rule_id, community=community, event=event, condition=json.dumps(condition, sort_keys=True),
                     points=points, cap=cap, period=period, active=True, memo=memo, created_at=utcnow(),
                     created_by=by)
    session.add(rule)
    session.flush()
    return rule_view(rule), True


def rules_of(session: Session, community: str) -> list[dict]:
    return [rule_view(r) for r in session.scalars(select(AwardRule).where(AwardRule.community == community)
                                                  .order_by(AwardRule.created_at, AwardRule.id))]


def set_active(session: Session, rule_id: str, active: bool) -> AwardRule | None:
    rule = session.get(AwardRule, rule_id, with_for_update=True)
    if rule is not None:
        rule.active = active
        session.flush()
    return rule


# --------------------------------------------------------------------------
# residents and households (points' projection of grids: households.py)
# --------------------------------------------------------------------------


def person_account(session: Session, community: str, user_id: str) -> Account:
    """The person's account in ``community``, opened if new; where the community pools by
    household, counting towards the household they are bound to there."""
    account, _ = ledger.open_account(session, kind=domain.PERSON, community=community, holder=user_id)
    if settings_of(session, community)["pool_by_household"]:
        household = households.household_of(session, user_id, community)
        if household and account.household != household:
            ledger.count_towards(session, account.id, household)
    return account


def count_towards_household(session: Session, user_id: str, household: str, grid_id: int) -> None:
    """grids bound a person to a household (households.py has it now): their account in
    that household's community counts towards it where the community pools by household."""
    community = households.community_of_grid(session, grid_id)
    if community and settings_of(session, community)["pool_by_household"]:
        account = session.execute(select(Account).where(Account.community == community,
                                                        Account.kind == domain.PERSON,
                                                        Account.holder == user_id)).scalar()
        if account is not None and account.household != household:
            ledger.count_towards(session, account.id, household)


# --------------------------------------------------------------------------
# awarding
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Earner:
    kind: str  # person | household
    holder: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.holder}"


def award_for(session: Session, event_name: str, data: dict, *, now: datetime | None = None) -> list[dict]:
    """Every award the community's active rules make for this event: the transfers made
    now (empty for a replay, a condition not met, a cap reached)."""
    source = SOURCES[event_name]
    community = data.get(source.community)
    if not community:
        log.info("no community named: nothing to award", extra={"event": event_name})
        return []
    rules = session.scalars(select(AwardRule).where(AwardRule.community == community, AwardRule.event == event_name,
                                                    AwardRule.active.is_(True)).order_by(AwardRule.id)).all()
    at = data.get("at") or now or utcnow()
    fact = ":".join(str(data[name]) for name in source.fact)
    made = []
    for rule in rules:
        if not holds(json.loads(rule.condition), data):
            continue
        for earner, suffix in earners(session, source, data, community):
            done = grant(session, rule, community, earner, f"award:{rule.id}:{fact}{suffix}", at, source.reason)
            if done is not None:
                made.append(done)
    return made


def earners(session: Session, source: Source, data: dict, community: str) -> Iterable[tuple[Earner, str]]:
    if source.person:
        if data.get(source.person):
            yield Earner(domain.PERSON, data[source.person]), ""
        return
    household = str(data[source.household])
    if settings_of(session, community)["hygiene_to"] == "members":
        members = households.members_of(session, household, community)
        if members:
            for user_id in members:
                yield Earner(domain.PERSON, user_id), f":{user_id}"
            return
        log.info("household has no members known: its own account earns", extra={"household": household})
    yield Earner(domain.HOUSEHOLD, household), ""


def grant(session: Session, rule: AwardRule, community: str, earner: Earner, source: str, at: datetime,
          reason: str) -> dict | None:
    """One award, at most once per ``source`` and within the rule's cap."""
    if ledger.find_transfer(session, ledger.derived_id(source)) is not None:
        return None  # awarded already: a replay
    amount = rule.points
    tally = None
    if rule.cap is not None:
        tally = locked_tally(session, rule.id, earner.key, period_of(rule.period, at, local_tz(session)))
        amount = min(amount, rule.cap - tally.points)
        if amount <= 0:
            log.info("cap reached", extra={"rule": rule.id, "period": tally.period})
            return None
    if earner.kind == domain.PERSON:
        account = person_account(session, community, earner.holder)
    else:
        account, _ = ledger.open_account(session, kind=domain.HOUSEHOLD, community=community, holder=earner.holder)
    outcome = ledger.award(session, community=community, account_id=account.id, amount=amount, source=source,
                           memo=f"{reason} ({rule.id})"[:200])
    if tally is not None:
        tally.points += amount
    announce(session, community, account.id, earner, amount, outcome.transfer["id"], reason=reason, rule_id=rule.id)
    return outcome.transfer


def locked_tally(session: Session, rule_id: str, beneficiary: str, period: str) -> AwardTally:
    """The tally row, created if new, locked: two awards to one person weigh the cap in turn."""
    key = (rule_id, beneficiary, period)
    tally = session.get(AwardTally, key, with_for_update=True, populate_existing=True)
    if tally is None:
        try:
            with session.begin_nested():
                session.add(AwardTally(rule_id=rule_id, beneficiary=beneficiary, period=period, points=0))
        except IntegrityError:
            pass  # another award made it first
        tally = session.get(AwardTally, key, with_for_update=True, populate_existing=True)
    assert tally is not None
    return tally


def announce(session: Session, community: str, account_id: int, earner: Earner, amount: int, transfer_id: str, *,
             reason: str, rule_id: str | None) -> None:
    """The notice event: who earned, and whom to tell (the person, or the household's members)."""
    balance = balance_of(session, account_id)
    notify = [earner.holder] if earner.kind == domain.PERSON \
        else households.members_of(session, earner.holder, community)
    outbox.record(session, AWARD_GRANTED, {
        "community": community, "account_id": account_id, "kind": earner.kind, "holder": earner.holder,
        "amount": amount, "balance": balance, "notify": notify, "at": utcnow(), "transfer_id": transfer_id,
        "reason": reason, "rule_id": rule_id}, subject=transfer_id)


def balance_of(session: Session, account_id: int) -> int:
    row = session.execute(select(Account.__table__).where(Account.__table__.c.id == account_id)).one()
    return ledger.totals_of(row).balance


# --------------------------------------------------------------------------
# manual awards and deductions
# --------------------------------------------------------------------------

AWARD, DEDUCT = "award", "deduct"
AWAITING, DONE, REJECTED = "awaiting", "done", "rejected"


def adjustment_view(row: Adjustment) -> dict:
    return {name: getattr(row, name) for name in (
        "id", "community", "account_id", "direction", "amount", "reason", "state", "requested_by", "decided_by",
        "transfer_id")} | {"requested_at": aware(row.requested_at), "decided_at": aware(row.decided_at)}


def adjust(session: Session, principal: Principal, *, adjustment_id: str, community: str, account_id: int,
           direction: str, amount: int, reason: str) -> tuple[dict, bool]:
    """A manual award or deduction: made at once up to the community's threshold, above it
    waiting for a second admin. The same id again answers the first (a retry)."""
    domain.check_amount(amount)
    asked = {"community": community, "account_id": account_id, "direction": direction, "amount": amount,
             "reason": reason}
    found = session.get(Adjustment, adjustment_id)
    if found is not None:
        different = [k for k, v in asked.items() if getattr(found, k) != v]
        if different:
            raise Refused("exists-with-different-fields", f"adjustment {adjustment_id} exists with different "
                          f"fields: {', '.join(different)}", fields=different)
        return adjustment_view(found), False
    account = session.get(Account, account_id)
    if account is None or account.community != community or account.kind not in (domain.PERSON, domain.HOUSEHOLD):
        raise Invalid("account_id", "no person's or household's account of this community")
    row = Adjustment(id=adjustment_id, requested_by=principal.subject, requested_at=utcnow(), state=AWAITING,
                     **asked)
    session.add(row)
    session.flush()
    audit.record(session, principal, f"points_{direction}_requested", subject_id=holder_person(account),
                 resource=f"adjustment:{adjustment_id}", reason=reason)
    if amount <= settings_of(session, community)["approval_threshold"]:
        carry_out(session, row, account, principal)
    return adjustment_view(row), True


def decide(session: Session, principal: Principal, adjustment_id: str, *, approve: bool) -> dict | None:
    """A second admin approves (the points move) or rejects an adjustment awaiting them."""
    row = session.get(Adjustment, adjustment_id, with_for_update=True)
    if row is None:
        return None
    if row.state != AWAITING:
        raise Refused("adjustment-decided", f"adjustment {adjustment_id} is {row.state} already", state=row.state)
    if row.requested_by == principal.subject:
        raise Refused("second-admin-required", "another admin than the one who asked must approve or reject it")
    account = session.get(Account, row.account_id)
    assert account is not None
    audit.record(session, principal, f"points_{row.direction}_{'approved' if approve else 'rejected'}",
                 subject_id=holder_person(account), resource=f"adjustment:{adjustment_id}", reason=row.reason)
    if approve:
        carry_out(session, row, account, principal)
    else:
        row.state, row.decided_by, row.decided_at = REJECTED, principal.subject, utcnow()
    session.flush()
    return adjustment_view(row)


def carry_out(session: Session, row: Adjustment, account: Account, principal: Principal) -> None:
    pool, _ = ledger.open_account(session, kind=domain.ISSUING, community=row.community)
    debit, credit = (pool.id, account.id) if row.direction == AWARD else (account.id, pool.id)
    source = f"adjustment:{row.id}"
    outcome = ledger.transfer(session, Request(id=ledger.derived_id(source), debit_account_id=debit,
                                               credit_account_id=credit, amount=row.amount, code="adjustment",
                                               source=source, memo=row.reason[:200]), by=principal.subject)
    row.state, row.transfer_id = DONE, outcome.transfer["id"]
    if row.requested_by != principal.subject:
        row.decided_by, row.decided_at = principal.subject, utcnow()
    if row.direction == AWARD:
        announce(session, row.community, account.id, Earner(account.kind, account.holder), row.amount,
                 outcome.transfer["id"], reason="adjustment", rule_id=None)


def holder_person(account: Account) -> str | None:
    return account.holder if account.kind == domain.PERSON else None


# --------------------------------------------------------------------------
# expiry after N months (a community's choice; off by default)
# --------------------------------------------------------------------------

EXPIRING = (domain.PERSON, domain.HOUSEHOLD)


def cutoff(now: datetime, months: int, tz: ZoneInfo) -> datetime:
    """Points earned before this moment have expired: local midnight ``months`` months ago
    (the last day of a shorter month when the day does not exist there)."""
    local = now.astimezone(tz)
    month_index = local.year * 12 + local.month - 1 - months
    year, month = divmod(month_index, 12)
    month += 1
    day = local.day
    while True:
        try:
            return datetime(year, month, day, tzinfo=tz).astimezone(UTC)
        except ValueError:
            day -= 1


def expire_community(db: Database, community: str, months: int, now: datetime, tz: ZoneInfo) -> int:
    """Move the points earned before the cutoff and not spent since (oldest spent first) to
    the community's expiry account; how many accounts lost points. Idempotent: the transfer
    of one account on one cutoff has one id, and a second run finds nothing left to expire."""
    before = cutoff(now, months, tz)
    with db.transaction() as session:
        candidates = session.execute(
            select(Entry.account_id).join(Account, Account.id == Entry.account_id)
            .where(Account.community == community, Account.kind.in_(EXPIRING),
                   # only accounts with something left to expire: most of a community's history is spent
                   Account.credits_posted - Account.debits_posted - Account.debits_pending > 0,
                   Entry.side == "credit",
                   Entry.phase.in_((domain.SINGLE, domain.POST)), Entry.at < before)
            .group_by(Entry.account_id)).scalars().all()
    expired = 0
    for account_id in candidates:
        try:
            with db.transaction() as session:
                if expire_account(session, community, account_id, before):
                    expired += 1
        except (Refused, IntegrityError):
            log.info("expiry raced another move; next sweep", extra={"account_id": account_id})
    return expired


def expire_account(session: Session, community: str, account_id: int, before: datetime) -> bool:
    # The account locked first (the same lock the ledger takes): what it earned and spent is
    # read and moved without a spend slipping in between.
    A = Account.__table__
    row = session.execute(select(A).where(A.c.id == account_id).with_for_update(key_share=True)).one()
    earned = session.execute(select(func.coalesce(func.sum(Entry.amount), 0)).where(
        Entry.account_id == account_id, Entry.side == "credit", Entry.phase.in_((domain.SINGLE, domain.POST)),
        Entry.at < before)).scalar_one()
    totals = ledger.totals_of(row)
    amount = min(int(earned) - totals.debits_posted - totals.debits_pending, totals.available)
    if amount <= 0:
        return False
    sink, _ = ledger.open_account(session, kind=domain.EXPIRY, community=community)
    source = f"expiry:{account_id}:{before.isoformat()}"
    outcome = ledger.transfer(session, Request(id=ledger.derived_id(source), debit_account_id=account_id,
                                               credit_account_id=sink.id, amount=amount, code="expiry",
                                               source=source, memo="earned before " + before.isoformat()), by=None)
    if not outcome.created:
        return False
    notify = [row.holder] if row.kind == domain.PERSON \
        else households.members_of(session, row.holder, community)
    outbox.record(session, ACCOUNT_EXPIRED, {
        "community": community, "account_id": account_id, "kind": row.kind, "holder": row.holder, "amount": amount,
        "balance": balance_of(session, account_id), "notify": notify, "at": utcnow(),
        "transfer_id": outcome.transfer["id"], "earned_before": before}, subject=outcome.transfer["id"])
    return True


def expire(db: Database, now: datetime | None = None) -> int:
    """Every community that chose expiry, swept once; how many accounts lost points."""
    now = now or utcnow()
    with db.transaction() as session:
        tz = local_tz(session)
        chosen = session.execute(select(EarningSettings.community, EarningSettings.expiry_months)
                                 .where(EarningSettings.expiry_months.is_not(None))).all()
    return sum(expire_community(db, community, months, now, tz) for community, months in chosen)


def expire_points(runtime, stop: threading.Event) -> None:
    """The worker's loop (``ServiceSpec.background``): points past their community's months
    expire, swept every ``GRIDGOV_POINTS_EXPIRY_SECONDS`` (an hour)."""
    keep_tidy(stop, runtime.extras.get("expiry_seconds", 3600.0), lambda: expire(runtime.db), "points past expiry",
              done="accounts")

