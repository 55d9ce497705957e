"""The working calendar deadlines count by: the national calendar (domain.py) plus the
county's own days, which county admins keep (``calendar_days``).

Every process keeps one :class:`domain.WorkingCalendar` per database and rebuilds it
when the calendar revision (row 2 of ``projection_revision``, bumped with each change)
moves: the revision is read once per transaction, the days only after a change.
"""

from __future__ import annotations

import threading
import weakref
from datetime import date, datetime
from zoneinfo import ZoneInfo

import chinese_calendar
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from gridkit.auth import Principal

from . import domain
from .tables import CALENDAR_ROW, CalendarDay, Case, ProjectionRevision, revision

HOLIDAY, WORKING_DAY = "holiday", "working_day"
KINDS = (HOLIDAY, WORKING_DAY)


def read_revision(session: Session) -> int:
    """Read once per transaction; ``bump`` forgets it."""
    return revision(session, CALENDAR_ROW)


def bump(session: Session) -> None:
    session.info.pop("revisions", None)
    done = session.execute(update(ProjectionRevision).where(ProjectionRevision.id == CALENDAR_ROW)
                           .values(revision=ProjectionRevision.revision + 1)).rowcount
    if not done:
        session.add(ProjectionRevision(id=CALENDAR_ROW, revision=1))
        session.flush()


_CALENDARS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def calendar(session: Session) -> domain.WorkingCalendar:
    """The working calendar of this database, in the service's time zone (``GRIDGOV_TIMEZONE``,
    carried by the session: see service.setup)."""
    tz: ZoneInfo = session.info.get("timezone", domain.SHANGHAI)
    revision = read_revision(session)
    engine = session.get_bind()
    known = _CALENDARS.get(engine)
    if known is not None and known[0] == (revision, tz):
        return known[1]
    days = session.execute(select(CalendarDay.day, CalendarDay.kind)).all()
    built = domain.WorkingCalendar(tz, days_off=[d for d, kind in days if kind == HOLIDAY],
                                   working_days=[d for d, kind in days if kind == WORKING_DAY])
    with _LOCK:
        _CALENDARS[engine] = ((revision, tz), built)
    return built


def for_case(session: Session, case: Case) -> domain.WorkingCalendar | None:
    """What the case's clocks count: working hours, or round the clock (None)."""
    return calendar(session) if case.working_hours else None


# --------------------------------------------------------------------------
# the county's days: county admins keep them
# --------------------------------------------------------------------------


def national_years() -> tuple[int, int]:
    """The years the installed national calendar knows."""
    years = [day.year for day in chinese_calendar.holidays]
    return min(years), max(years)


def days(session: Session, year: int | None = None) -> list[CalendarDay]:
    query = select(CalendarDay).order_by(CalendarDay.day)
    if year is not None:
        query = query.where(CalendarDay.day >= date(year, 1, 1), CalendarDay.day <= date(year, 12, 31))
    return list(session.execute(query).scalars())


def set_day(session: Session, actor: Principal, day: date, kind: str, name: str, now: datetime) -> CalendarDay:
    """Add the county's own day off or working day, or change the one it has on that date.
    Deadlines computed from then on count it; clocks already running keep their due time."""
    domain.require(actor.has_role("county_admin"), "only county admins keep the county's calendar")
    row = session.get(CalendarDay, day) or CalendarDay(day=day)
    row.kind, row.name, row.set_by, row.set_at = kind, name, actor.subject, now
    session.add(row)
    bump(session)
    return row


def remove_day(session: Session, actor: Principal, day: date) -> bool:
    """Back to the national calendar on that date; False when the county had nothing there."""
    domain.require(actor.has_role("county_admin"), "only county admins keep the county's calendar")
    removed = session.execute(delete(CalendarDay).where(CalendarDay.day == day)).rowcount
    if removed:
        bump(session)
    return bool(removed)
