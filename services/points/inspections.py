"""Monthly hygiene inspections (清洁户): an inspector records a household's personal,
household and public hygiene, out of 100 each; a household at or above the community's
pass mark on all three is a clean household for the month. The inspection is recorded
once per household and month (the same results again are a replay; others are refused),
and its event awards the points through the community's award rules."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gridkit.auth import Principal

from . import awards, households
from .domain import Invalid, NotPermitted, Refused
from .events import HOUSEHOLD_INSPECTED
from .tables import Inspection, aware, outbox, utcnow

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
SCORES = ("personal", "household", "public")
INSPECTORS = ("grid_worker", "grid_head")


def view(row: Inspection) -> dict:
    return {"id": row.id, "community": row.community, "household_id": row.household, "month": row.month,
            "personal": row.personal, "household": row.household_score, "public": row.public, "passed": row.passed,
            "inspector": row.inspector, "at": aware(row.at)}


def may_inspect(session: Session, principal: Principal, community: str) -> bool:
    """A grid worker (or head) of a grid in the community, or the community's admin."""
    if any(g.scope_type == "division" and g.scope_id == community for g in principal.grants_for("community_admin")):
        return True
    grids = [int(g.scope_id) for g in principal.grants_for(*INSPECTORS)
             if g.scope_type == "grid" and g.scope_id and g.scope_id.isdigit() and len(g.scope_id) < 19]
    return households.any_grid_in(session, grids, community)


def inspect(session: Session, principal: Principal, *, community: str, household: str, month: str,
            personal: int, household_score: int, public: int, now: datetime | None = None) -> tuple[dict, bool]:
    now = now or utcnow()
    if not may_inspect(session, principal, community):
        raise NotPermitted("only a grid worker of this community, or its admin, inspects its households")
    if not MONTH.match(month):
        raise Invalid("month", "YYYY-MM")
    if month > now.astimezone(awards.local_tz(session)).strftime("%Y-%m"):
        raise Invalid("month", "a month that has begun")
    known = households.communities_of_household(session, household)
    if known and community not in known:
        raise Invalid("household", "this household is in another community")
    scores = {"personal": personal, "household_score": household_score, "public": public}
    found = session.execute(select(Inspection).where(Inspection.community == community,
                                                     Inspection.household == household,
                                                     Inspection.month == month)).scalar()
    if found is None:
        mark = awards.settings_of(session, community)["hygiene_pass_mark"]
        row = Inspection(id=str(uuid.uuid4()), community=community, household=household, month=month,
                         passed=all(v >= mark for v in scores.values()), inspector=principal.subject, at=now, **scores)
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:  # another inspector recorded it a moment ago
            found = session.execute(select(Inspection).where(Inspection.community == community,
                                                             Inspection.household == household,
                                                             Inspection.month == month)).scalar_one()
        else:
            data = view(row)
            event = {k: v for k, v in data.items() if k != "id"} | {"inspection_id": row.id}
            outbox.record(session, HOUSEHOLD_INSPECTED, event, subject=row.id)
            return data, True
    different = [k.removesuffix("_score") for k, v in scores.items() if getattr(found, k) != v]
    if different:
        raise Refused("inspected-already", f"household {household} was inspected for {month} already, with "
                      f"other results ({', '.join(different)})", inspection_id=found.id)
    return view(found), False


def clean_households(session: Session, community: str, month: str) -> list[dict]:
    return [view(r) for r in session.scalars(select(Inspection).where(
        Inspection.community == community, Inspection.month == month, Inspection.passed.is_(True))
        .order_by(Inspection.household))]


def marks_of(session: Session, community: str, household: str) -> list[dict]:
    return [view(r) for r in session.scalars(select(Inspection).where(
        Inspection.community == community, Inspection.household == household).order_by(Inspection.month.desc()))]
