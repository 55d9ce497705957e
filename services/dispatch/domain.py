"""Dispatch's rules in plain Python: the case state machine, the ladder,
deadlines in working hours (the national calendar and the county's own days),
traffic lights, who may do what, the 三率.

No Flask, no SQLAlchemy: the service layer (cases.py) passes plain values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from statistics import median
from zoneinfo import ZoneInfo

import chinese_calendar

from gridkit.auth import Principal

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------
# states and transitions
# --------------------------------------------------------------------------

AWAITING_APPROVAL = "awaiting_approval"
OFFERED = "offered"
CLAIMED = "claimed"
RETURNED = "returned"
REVIEWING = "reviewing"
RESOLVED = "resolved"
REOPENED = "reopened"
CLOSED = "closed"
STATES = (AWAITING_APPROVAL, OFFERED, CLAIMED, RETURNED, REVIEWING, RESOLVED, REOPENED, CLOSED)

UNCLAIMED = (AWAITING_APPROVAL, OFFERED, RETURNED)
HANDLING = (CLAIMED, REOPENED)  # someone holds the case and works on it
OPEN = tuple(s for s in STATES if s != CLOSED)

# action → the states it may start from. The target is decided by the service layer
# (e.g. resolve goes to reviewing or resolved depending on the community).
ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    "approve": (AWAITING_APPROVAL, RETURNED),
    "claim": (OFFERED,),
    "escalate": (OFFERED, AWAITING_APPROVAL, RETURNED),
    "note": OPEN,
    "request_extension": HANDLING,
    "decide_extension": HANDLING,
    "return": HANDLING,
    "resolve": HANDLING,
    "review": (REVIEWING,),
    "rate": (RESOLVED,),
    "rating_timeout": (RESOLVED,),
    "reopen": (RESOLVED, CLOSED),  # rework may follow a low rating that already closed it
    "withdraw": UNCLAIMED,
    "merge": OPEN,
    "whistle": OPEN,
    "report_in": OPEN + (CLOSED,),  # a late department may still report in (recorded as late)
    "department_handling": OPEN,
    "consult": OPEN,
    "score": (RESOLVED, CLOSED),
    # a supervisor moves the case to a worker: held, given back, or still waiting for a claim
    "reassign": (OFFERED, RETURNED) + HANDLING,
    # 督办: anything still waiting on someone (not the community's review, not the resident's rating)
    "supervise": (AWAITING_APPROVAL, OFFERED, RETURNED) + HANDLING,
}

WHY_NOT = {
    "claim": "only an offered case can be claimed; this one is {state}",
    "withdraw": "a petition can be withdrawn only while nobody has claimed it; the case is {state}",
    "score": "departments are scored after the case is resolved or closed; it is {state}",
    "reopen": "only a resolved or rated case can be reworked; the case is {state}",
    "reassign": "only a case that is claimed, offered or returned can be reassigned; this one is {state}",
    "supervise": "only a case still waiting on someone can be flagged for supervision; this one is {state}",
}


class Refused(Exception):
    """A rule forbids this now (HTTP 409); ``reason`` says why, in words."""

    def __init__(self, reason: str, state: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.state = state


class Invalid(Exception):
    """A value in the request names something that cannot be used here (HTTP 422)."""

    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field = field
        self.reason = reason


class NotPermitted(Exception):
    """The actor's role or scope does not allow this (HTTP 403)."""

    def __init__(self, reason: str = "your role and scope do not allow this"):
        super().__init__(reason)
        self.reason = reason


def check(action: str, state: str) -> None:
    """Raise :class:`Refused` unless ``action`` may start from ``state``."""
    if state not in ALLOWED_FROM[action]:
        template = WHY_NOT.get(action, "cannot {action} a case that is {state}")
        raise Refused(template.format(action=action.replace("_", " "), state=state), state)


# --------------------------------------------------------------------------
# the ladder: 小事不出格, 大事不出网
# --------------------------------------------------------------------------

# Rungs a case climbs while nobody claims it. Rungs with nobody on them are skipped.
RUNGS = ("grid_worker", "grid_head", "community_admin", "street_admin", "county_admin")
LEVEL_OF_RUNG = {"grid_worker": "grid", "grid_head": "grid", "community_admin": "community",
                 "street_admin": "street", "county_admin": "county"}
LEVELS = ("grid", "community", "street", "county")


def next_level(level: str) -> str:
    return LEVELS[min(LEVELS.index(level) + 1, len(LEVELS) - 1)]


# --------------------------------------------------------------------------
# deadlines: round the clock, or working hours (09:00–18:00 local time on working days)
# --------------------------------------------------------------------------

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY_START, DAY_END = time(9), time(18)


@lru_cache(maxsize=8192)
def national_working_day(day: date) -> bool | None:
    """The mainland's national calendar (chinese_calendar): public holidays are days off,
    调休 make-up days (often a Saturday or Sunday) are working days. None for a year the
    installed library does not know yet (it learns each year when the State Council
    publishes it): such a year counts Monday to Friday, warned once per process."""
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:
        if day.year not in _UNKNOWN_YEARS:
            _UNKNOWN_YEARS.add(day.year)
            log.warning("the national calendar does not know this year yet: Monday to Friday are working "
                        "days, plus the county's own days; upgrade chinesecalendar",
                        extra={"year": day.year, "chinesecalendar": chinese_calendar.__version__})
        return None


_UNKNOWN_YEARS: set[int] = set()


class WorkingCalendar:
    """Working days and hours (09:00–18:00) in local time ``tz``: the national calendar,
    with the county's own additions on top (an extra day off or an extra working day)."""

    def __init__(self, tz: ZoneInfo = SHANGHAI, *, days_off: Iterable[date] = (),
                 working_days: Iterable[date] = (),
                 national: Callable[[date], bool | None] = national_working_day):
        self.tz = tz
        self.days_off = frozenset(days_off)
        self.working_days = frozenset(working_days)
        self.national = national

    def is_working_day(self, day: date) -> bool:
        if day in self.days_off:
            return False
        if day in self.working_days:
            return True
        known = self.national(day)
        return day.weekday() < 5 if known is None else known

    def windows(self, start: datetime):
        """Working windows (local start, local end) from ``start`` on, forever."""
        tz = self.tz
        local = start.astimezone(tz)
        day = local.date()
        while True:
            if self.is_working_day(day):
                opens = datetime.combine(day, DAY_START, tz)
                closes = datetime.combine(day, DAY_END, tz)
                if closes > local:
                    yield max(opens, local), closes
            day += timedelta(days=1)


NATIONAL = WorkingCalendar()  # no county additions, Asia/Shanghai


def due_after(start: datetime, hours: float, working: WorkingCalendar | None) -> datetime:
    """The moment ``hours`` have passed after ``start``: round the clock (``working`` None),
    or working hours of the ``working`` calendar."""
    start = aware(start)
    if working is None:
        return start + timedelta(hours=hours)
    left = timedelta(hours=hours)
    for opens, closes in working.windows(start):
        if closes - opens >= left:
            return (opens + left).astimezone(UTC)
        left -= closes - opens
    raise AssertionError("unreachable")


def time_between(start: datetime, end: datetime, working: WorkingCalendar | None) -> timedelta:
    """Elapsed (working) time from ``start`` to ``end`` (zero if end is earlier)."""
    start, end = aware(start), aware(end)
    if end <= start:
        return timedelta(0)
    if working is None:
        return end - start
    total = timedelta(0)
    for opens, closes in working.windows(start):
        if opens >= end:
            return total
        total += min(closes, end) - opens
    raise AssertionError("unreachable")


GREEN, YELLOW, RED = "green", "yellow", "red"
WARN_AT = 0.8  # 80 % of the time gone: yellow light, reminder


def traffic_light(started: datetime, due: datetime | None, now: datetime, working: WorkingCalendar | None,
                  done_at: datetime | None = None) -> tuple[str | None, float | None]:
    """(light, fraction of the step's time used). Green < 80 %, yellow 80–100 %, red overdue."""
    if due is None:
        return None, None
    end = aware(done_at or now)
    total = time_between(started, due, working)
    if end > aware(due):
        return RED, round(max(1.0, time_between(started, end, working) / total if total else 1.0), 3)
    used = time_between(started, end, working) / total if total else 1.0
    return (YELLOW if used >= WARN_AT else GREEN), round(used, 3)


def warn_at(started: datetime, due: datetime, working: WorkingCalendar | None) -> datetime:
    """When 80 % of the step's time is gone (the reminder is due)."""
    return due_after(started, time_between(started, due, working).total_seconds() / 3600 * WARN_AT, working)


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes: everything we store is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --------------------------------------------------------------------------
# who may do what: roles plus scopes (county, grid:<id>, division:<code>, department:<code>)
# --------------------------------------------------------------------------

STAFF = ("grid_worker", "grid_head", "community_admin", "street_admin", "county_admin", "dept_officer")
DIVISION_ADMINS = ("community_admin", "street_admin")
ADMINS = (*DIVISION_ADMINS, "county_admin")
DISPATCHERS = ("community_admin", "county_admin")  # approve, and choose where a case goes
# Who moves stuck cases (reassign, 督办): the grid head of the case's grid or above, and the
# admins of its area.
SUPERVISORS = ("grid_head", *ADMINS)


@dataclass(frozen=True)
class Place:
    """Where a case sits, as scope checks need it."""

    grid_chain: tuple[int, ...]  # the case's grid and its ancestors (empty: catch-all)
    divisions: tuple[str, ...]  # community, street, county codes the case lies in
    departments: tuple[str, ...] = ()  # departments whistled on the case


def grants(principal: Principal, *roles: str) -> list[str]:
    return [grant.scope for grant in principal.grants if grant.role in roles]


def departments_of(principal: Principal) -> set[str]:
    return {scope.partition(":")[2] for scope in grants(principal, "dept_officer")
            if scope.startswith("department:")}


def covers(scope: str, place: Place) -> bool:
    kind, _, ident = scope.partition(":")
    if scope == "county":
        return True
    if kind == "division":
        return ident in place.divisions
    if kind == "grid":
        return ident.isdigit() and int(ident) in place.grid_chain
    if kind == "department":
        return ident in place.departments
    return False


def in_scope(principal: Principal, place: Place, roles: Iterable[str]) -> bool:
    """Does one of the principal's grants for ``roles`` cover the place?"""
    roles = tuple(roles)
    if "county_admin" in roles and principal.has_role("county_admin"):
        return True
    return any(covers(scope, place) for scope in grants(principal, *roles))


def may_send_to(principal: Principal, target: Place) -> bool:
    """A dispatcher sends a case only into a grid of their own scope (its subtree, their
    division, or the county): approving never moves work into someone else's area."""
    return in_scope(principal, target, DISPATCHERS)


def may_see(principal: Principal, place: Place, *, offered_to_me: bool = False,
            handled_by_me: bool = False) -> bool:
    return offered_to_me or handled_by_me or in_scope(principal, place, STAFF)


def require(allowed: bool, reason: str) -> None:
    if not allowed:
        raise NotPermitted(reason)


# --------------------------------------------------------------------------
# figures: Beijing's 三率
# --------------------------------------------------------------------------


@dataclass
class CaseFacts:
    key: str
    offered: bool
    claimed_in_time: bool
    claim_seconds: float | None
    resolved: bool
    rating: int | None
    overdue: bool
    supervised: bool = False


# A case counts as resolved once it was resolved, or closed by one of these outcomes.
RESOLVED_OUTCOMES = ("rated", "rating_timeout", "on_spot")
SATISFIED_RATING = 4  # 满意: a rating of 4 or 5


def figures(facts: Iterable[CaseFacts]) -> list[dict]:
    """Response rate (claimed in time / offered), resolution rate (resolved / opened),
    satisfaction rate (ratings ≥ 4 / rated), median claim time, overdue count."""
    groups: dict[str, list[CaseFacts]] = {}
    for fact in facts:
        groups.setdefault(fact.key, []).append(fact)

    def rate(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    out = []
    for key, cases in sorted(groups.items()):
        offered = sum(c.offered for c in cases)
        in_time = sum(c.offered and c.claimed_in_time for c in cases)
        resolved = sum(c.resolved for c in cases)
        rated = [c.rating for c in cases if c.rating is not None]
        satisfied = sum(r >= SATISFIED_RATING for r in rated)
        claim_times = [c.claim_seconds for c in cases if c.claim_seconds is not None]
        out.append({
            "key": key, "opened": len(cases), "offered": offered, "claimed_in_time": in_time,
            "response_rate": rate(in_time, offered), "resolved": resolved,
            "resolution_rate": rate(resolved, len(cases)), "rated": len(rated), "satisfied": satisfied,
            "satisfaction_rate": rate(satisfied, len(rated)),
            "median_claim_seconds": median(claim_times) if claim_times else None,
            "overdue": sum(c.overdue for c in cases),
            "supervised": sum(c.supervised for c in cases),
        })
    return out
