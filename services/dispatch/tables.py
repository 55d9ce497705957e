"""Dispatch's tables: cases and their history, plus projections of other
services' events (grids, divisions, staffing, role grants): no call per case."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    select,
    update,
)
from sqlalchemy.orm import Session

from gridkit.db import declarative_base
from gridkit.outbox import ID, Inbox, Outbox

Base = declarative_base()
outbox = Outbox(Base.metadata)
inbox = Inbox(Base.metadata)

When = DateTime(timezone=True)


def utcnow() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------
# projections
# --------------------------------------------------------------------------


class KnownGrid(Base):
    """The current version of every grid (grids.grid.*), boundary included."""

    __tablename__ = "known_grids"
    id = Column(ID, primary_key=True, autoincrement=False)
    network = Column(String(32), nullable=False)
    code = Column(String(128), nullable=False)
    level = Column(Integer, nullable=False)
    parent_id = Column(ID)
    division_code = Column(String(64))
    version = Column(Integer, nullable=False)
    boundary = Column(Text, nullable=False)
    retired = Column(Boolean, nullable=False, default=False)


class KnownDivision(Base):
    """county → street → community (grids.division.created): the ladder climbs these."""

    __tablename__ = "known_divisions"
    id = Column(ID, primary_key=True, autoincrement=False)
    code = Column(String(64), nullable=False, unique=True)
    kind = Column(String(16), nullable=False)
    parent_id = Column(ID)
    boundary = Column(Text, nullable=False)


class ProjectionRevision(Base):
    """Revisions that each process's in-memory copies follow, rebuilt lazily when one moves:
    row 1, bumped with every grid or division change, for the locate index (as grids'
    registry_revision); row 2, bumped with every county calendar day, for the working calendar."""

    __tablename__ = "projection_revision"
    id = Column(Integer, primary_key=True)
    revision = Column(ID, nullable=False, default=0)


class GridStaff(Base):
    """Grid heads and workers (grids.staff.assigned / unassigned)."""

    __tablename__ = "grid_staff"
    assignment_id = Column(ID, primary_key=True, autoincrement=False)
    grid_id = Column(ID, nullable=False)
    user_id = Column(String(64), nullable=False)
    role = Column(String(32), nullable=False)
    active = Column(Boolean, nullable=False, default=True)
    __table_args__ = (Index("ix_grid_staff_grid", "grid_id", "active", "role"),)


class StaffGrant(Base):
    """Admins and department officers (identity.role.granted / revoked)."""

    __tablename__ = "staff_grants"
    grant_id = Column(ID, primary_key=True, autoincrement=False)
    user_id = Column(String(64), nullable=False)
    role = Column(String(32), nullable=False)
    scope = Column(String(100), nullable=False)
    revoked = Column(Boolean, nullable=False, default=False)
    __table_args__ = (Index("ix_staff_grants_role_scope", "role", "scope", "revoked"),)


class AccountStatus(Base):
    """Accounts disabled in identity (identity.user.disabled / enabled): nobody disabled
    stands on a rung of the ladder, whatever the staffing and grant projections still say."""

    __tablename__ = "account_status"
    user_id = Column(String(64), primary_key=True)
    disabled = Column(Boolean, nullable=False)
    changed_at = Column(When, nullable=False)  # the event's moment: a late, older event changes nothing


class CommunitySettings(Base):
    __tablename__ = "community_settings"
    division_code = Column(String(64), primary_key=True)
    approval_required = Column(Boolean, nullable=False, default=False)
    review_required = Column(Boolean, nullable=False, default=False)
    updated_by = Column(String(64))
    updated_at = Column(When)


class CalendarDay(Base):
    """The county's own additions to the national calendar (county admins keep them): an
    extra day off (a local holiday) or an extra working day, each with its name."""

    __tablename__ = "calendar_days"
    day = Column(Date, primary_key=True)
    kind = Column(String(16), nullable=False)  # holiday | working_day
    name = Column(String(100), nullable=False)
    set_by = Column(String(64), nullable=False)
    set_at = Column(When, nullable=False)


# --------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------


class Case(Base):
    __tablename__ = "cases"
    id = Column(String(36), primary_key=True)  # time-ordered (UUIDv7): pages run oldest first
    petition_id = Column(String(64), nullable=False, unique=True)  # one case per petition
    reporter_id = Column(String(64), nullable=False)
    anonymous = Column(Boolean, nullable=False, default=False)  # hide the reporter from staff
    category = Column(String(64), nullable=False)
    network = Column(String(32), nullable=False)
    channel = Column(String(16), nullable=False)
    lon = Column(Float, nullable=False)
    lat = Column(Float, nullable=False)
    grid_id = Column(ID)  # null: the county's catch-all queue
    community = Column(String(64))
    street = Column(String(64))
    county = Column(String(64))
    catch_all = Column(Boolean, nullable=False, default=False)
    state = Column(String(24), nullable=False)
    level = Column(String(16), nullable=False)
    rung = Column(String(24), nullable=False)  # who it is offered to: domain.RUNGS
    # deadlines as the category set them
    claim_minutes = Column(Integer, nullable=False)
    handle_hours = Column(Integer, nullable=False)
    handle_minutes = Column(Integer)  # when set, wins over handle_hours
    working_hours = Column(Boolean, nullable=False)
    review_required = Column(Boolean, nullable=False, default=False)
    # the current step's clock (approve, claim, handle; null when nothing is due)
    step = Column(String(16))
    step_started_at = Column(When)
    step_due_at = Column(When)
    yellow_at = Column(When)  # 80 % of the step's time: yellow light and a reminder
    warned = Column(Boolean, nullable=False, default=False)  # the reminder went out
    step_missed = Column(Boolean, nullable=False, default=False)
    # people and milestones
    claimed_by = Column(String(64))
    opened_at = Column(When, nullable=False)
    first_offered_at = Column(When)
    first_claim_due = Column(When)
    claimed_at = Column(When)
    resolved_at = Column(When)
    result = Column(Text)
    closed_at = Column(When)
    outcome = Column(String(24))
    rating = Column(Integer)
    ever_overdue = Column(Boolean, nullable=False, default=False)
    # 督办: the last time a supervisor flagged the case for supervision, and who
    supervised_at = Column(When)
    supervised_by = Column(String(64))
    # nobody to offer it to or to approve it since then (alerted; offered when someone comes)
    unattended_since = Column(When)
    __table_args__ = (
        Index("ix_cases_due", "step_due_at"),
        Index("ix_cases_yellow", "yellow_at"),
        Index("ix_cases_state", "state", "resolved_at"),
        Index("ix_cases_grid", "grid_id", "opened_at"),
        Index("ix_cases_community", "community"),
        Index("ix_cases_street", "street"),
        Index("ix_cases_claimed_by", "claimed_by"),
        Index("ix_cases_unattended", "unattended_since"),
    )


class Offer(Base):
    """Who the case is offered to right now (秒认领: the first claim wins)."""

    __tablename__ = "offers"
    case_id = Column(String(36), ForeignKey("cases.id"), primary_key=True)
    user_id = Column(String(64), primary_key=True)
    __table_args__ = (Index("ix_offers_user", "user_id"),)


class Transition(Base):
    """Every change of state: who, when, from, to, why."""

    __tablename__ = "transitions"
    id = Column(ID, primary_key=True, autoincrement=True)
    case_id = Column(String(36), ForeignKey("cases.id"), nullable=False, index=True)
    at = Column(When, nullable=False)
    by = Column(String(64))  # null: the system (routing, sweep)
    action = Column(String(24), nullable=False)
    from_state = Column(String(24))
    to_state = Column(String(24), nullable=False)
    level = Column(String(16))
    reason = Column(Text)


class Note(Base):
    __tablename__ = "notes"
    id = Column(ID, primary_key=True, autoincrement=True)
    case_id = Column(String(36), ForeignKey("cases.id"), nullable=False, index=True)
    by = Column(String(64), nullable=False)
    at = Column(When, nullable=False)
    text = Column(Text, nullable=False)
    photos = Column(Text, nullable=False, default="[]")  # JSON list of intake photo ids


class Extension(Base):
    __tablename__ = "extensions"
    id = Column(ID, primary_key=True, autoincrement=True)
    case_id = Column(String(36), ForeignKey("cases.id"), nullable=False, index=True)
    requested_by = Column(String(64), nullable=False)
    requested_at = Column(When, nullable=False)
    hours = Column(Integer, nullable=False)
    reason = Column(Text, nullable=False)
    decision = Column(String(16), nullable=False, default="pending")  # pending | approved | refused
    decided_by = Column(String(64))
    decided_at = Column(When)
    comment = Column(Text)


class Whistle(Base):
    """吹哨: a street/community admin summons departments to a case."""

    __tablename__ = "whistles"
    id = Column(String(36), primary_key=True)
    case_id = Column(String(36), ForeignKey("cases.id"), nullable=False, index=True)
    by = Column(String(64), nullable=False)
    at = Column(When, nullable=False)
    report_in_due = Column(When, nullable=False)
    reason = Column(Text)


class Summons(Base):
    """One department's answer to a whistle: report-in (报到), handling, score (赋分)."""

    __tablename__ = "summonses"
    whistle_id = Column(String(36), ForeignKey("whistles.id"), primary_key=True)
    department = Column(String(64), primary_key=True)
    case_id = Column(String(36), ForeignKey("cases.id"), nullable=False)
    report_in_due = Column(When, nullable=False)
    reported_in_at = Column(When)
    reported_by = Column(String(64))
    late = Column(Boolean)
    missed = Column(Boolean, nullable=False, default=False)
    handling = Column(Text)
    handled_at = Column(When)
    handled_by = Column(String(64))
    score = Column(Integer)
    scored_by = Column(String(64))
    scored_at = Column(When)
    __table_args__ = (Index("ix_summonses_department", "department", "case_id"),
                      Index("ix_summonses_due", "report_in_due"))


class Consultation(Base):
    """会商: a joint meeting on a case, its attendees, decisions and their owners."""

    __tablename__ = "consultations"
    id = Column(ID, primary_key=True, autoincrement=True)
    case_id = Column(String(36), ForeignKey("cases.id"), nullable=False, index=True)
    held_on = Column(Date, nullable=False)
    attendees = Column(Text, nullable=False)  # JSON list
    decisions = Column(Text, nullable=False)  # JSON list of {decision, owner}
    recorded_by = Column(String(64), nullable=False)
    recorded_at = Column(When, nullable=False)


PROJECTION_ROW, CALENDAR_ROW = 1, 2  # the rows of projection_revision
REVISIONS = select(ProjectionRevision.id, ProjectionRevision.revision).where(
    ProjectionRevision.id.in_((PROJECTION_ROW, CALENDAR_ROW)))


def revision(session: Session, row: int) -> int:
    """The projection's or the calendar's revision. Both are read together, once per
    transaction (every case opened asks for both: one statement instead of two); a bump
    forgets them."""
    known = session.info.get("revisions")
    if known is None:
        known = session.info["revisions"] = {row: value for row, value in session.execute(REVISIONS)}
    return known.get(row) or 0


def bump_projection(session: Session) -> None:
    """Every process's locate index rebuilds when it sees the new revision."""
    session.info.pop("revisions", None)
    done = session.execute(update(ProjectionRevision).where(ProjectionRevision.id == PROJECTION_ROW)
                           .values(revision=ProjectionRevision.revision + 1)).rowcount
    if not done:
        session.add(ProjectionRevision(id=PROJECTION_ROW, revision=1))
        session.flush()
