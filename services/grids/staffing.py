"""Staffing terms as every door changes them: an admin ending a term (HTTP), or identity
saying the person left (``identity.user.disabled``)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .events import STAFF_UNASSIGNED
from .tables import Grid, Network, StaffAssignment, outbox


def staff_event(session: Session, term: StaffAssignment) -> dict:
    grid = session.get(Grid, term.grid_id)
    return {"assignment_id": term.id, "grid_id": term.grid_id,
            "network": session.get(Network, grid.network_id).code, "building_id": term.building_id,
            "user_id": term.user_id, "role": term.role, "since": term.since, "until": term.until}


def end_term(session: Session, term: StaffAssignment, when: datetime) -> None:
    term.until = when
    session.flush()
    outbox.record(session, STAFF_UNASSIGNED, staff_event(session, term), subject=str(term.grid_id))


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def end_terms_of(session: Session, user_id: str, at: datetime) -> int:
    """Someone left (their account was disabled at ``at``): every term they still hold ends
    then, as an admin ending it would (one ``grids.staff.unassigned`` each), so every
    projection of staffing follows. A term begun after ``at`` ends the moment it began.
    Returns how many ended; none the second time."""
    terms = session.execute(select(StaffAssignment).where(
        StaffAssignment.user_id == user_id, StaffAssignment.until.is_(None))
        .order_by(StaffAssignment.id).with_for_update()).scalars().all()
    for term in terms:
        end_term(session, term, max(aware(at), aware(term.since)))
    return len(terms)
