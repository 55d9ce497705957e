"""Community activities (a weekend clean-up, a reading club…): a community admin publishes
one with places; residents and party members sign up (接龙报名) while places are left;
the organiser shows a code at the door; a signed-up person who enters it during the
activity has attended, once, and the community's award rules give the points.

Places are taken with one guarded UPDATE (``taken < places``), so no number of
simultaneous sign-ups can take more than there are; a CHECK constraint backs it up.
Attendance is one guarded UPDATE too (``attended_at IS NULL``). A wrong code counts;
after :data:`MAX_WRONG_CODES` the person can no longer try (the code is 6 digits).
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .domain import Invalid, Refused
from .events import ACTIVITY_ATTENDED
from .tables import Activity, Signup, aware, outbox, utcnow

MAX_WRONG_CODES = 5
EARLY = timedelta(minutes=30)  # the door opens a little before the start
MAX_PLACES = 10_000


def view(row: Activity) -> dict:
    return {"id": row.id, "community": row.community, "title": row.title, "places": row.places, "taken": row.taken,
            "left": row.places - row.taken, "starts_at": aware(row.starts_at), "ends_at": aware(row.ends_at),
            "organiser": row.organiser, "created_at": aware(row.created_at)}


def publish(session: Session, *, community: str, title: str, places: int, starts_at: datetime, ends_at: datetime,
            organiser: str) -> Activity:
    if ends_at <= starts_at:
        raise Invalid("ends_at", "after starts_at")
    if ends_at <= utcnow():
        raise Invalid("ends_at", "in the future")
    row = Activity(id=str(uuid.uuid4()), community=community, title=title, places=places, taken=0,
                   starts_at=starts_at, ends_at=ends_at, code=f"{secrets.randbelow(10**6):06d}", organiser=organiser,
                   created_at=utcnow())
    session.add(row)
    session.flush()
    return row


def sign_up(session: Session, activity: Activity, user_id: str, now: datetime | None = None) -> tuple[dict, bool]:
    """A place for ``user_id``; signing up again answers the first (created False)."""
    now = now or utcnow()
    if session.get(Signup, (activity.id, user_id)) is not None:
        return view(activity), False
    if aware(activity.ends_at) <= now:  # type: ignore[operator]
        raise Refused("activity-over", "the activity is over")
    try:
        with session.begin_nested():
            session.add(Signup(activity_id=activity.id, user_id=user_id, signed_up_at=now, wrong_codes=0))
    except IntegrityError:  # the same person twice at once: the other sign-up holds the place
        return view(activity), False
    taken = session.execute(update(Activity).where(Activity.id == activity.id, Activity.taken < Activity.places)
                            .values(taken=Activity.taken + 1).returning(Activity.taken)).scalar()
    if taken is None:
        raise Refused("activity-full", f"all {activity.places} places are taken", places=activity.places)
    session.refresh(activity)
    return view(activity), True


WRONG = "wrong"


def attend(session: Session, activity: Activity, user_id: str, code: str, now: datetime | None = None) -> dict | str:
    """The attendance (and its event), or :data:`WRONG` for a wrong code (counted: the caller
    commits, then answers 422)."""
    now = now or utcnow()
    signup = session.get(Signup, (activity.id, user_id), with_for_update=True)
    if signup is None:
        raise Refused("not-signed-up", "only people who signed up attend with the code")
    if signup.attended_at is not None:
        raise Refused("attended-already", "your attendance was recorded already",
                      attended_at=aware(signup.attended_at).isoformat())  # type: ignore[union-attr]
    if not aware(activity.starts_at) - EARLY <= now <= aware(activity.ends_at):  # type: ignore[operator]
        raise Refused("outside-activity-time", "attendance is taken while the activity runs",
                      starts_at=aware(activity.starts_at).isoformat(),  # type: ignore[union-attr]
                      ends_at=aware(activity.ends_at).isoformat())  # type: ignore[union-attr]
    if signup.wrong_codes >= MAX_WRONG_CODES:
        raise Refused("too-many-wrong-codes", "too many wrong codes: ask the organiser")
    if not hmac.compare_digest(code.encode(), activity.code.encode()):
        signup.wrong_codes += 1
        return WRONG
    marked = session.execute(update(Signup).where(Signup.activity_id == activity.id, Signup.user_id == user_id,
                                                  Signup.attended_at.is_(None)).values(attended_at=now))
    if marked.rowcount != 1:  # type: ignore[attr-defined]
        raise Refused("attended-already", "your attendance was recorded already")
    outbox.record(session, ACTIVITY_ATTENDED, {"activity_id": activity.id, "community": activity.community,
                                               "user_id": user_id, "at": now}, subject=activity.id)
    return {"activity_id": activity.id, "user_id": user_id, "attended_at": now}


def signups_of(session: Session, activity_id: str) -> list[dict]:
    return [{"user_id": s.user_id, "signed_up_at": aware(s.signed_up_at), "attended_at": aware(s.attended_at)}
            for s in session.scalars(select(Signup).where(Signup.activity_id == activity_id)
                                     .order_by(Signup.signed_up_at, Signup.user_id))]
