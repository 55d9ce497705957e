"""What dispatch holds about a resident (PIPL): the cases opened from her petitions,
by her user id. It never held her name, phone or ID.

Erasure keeps every case and its history (the figures, 三率, are counted from them)
and hides her from staff for good: each of her cases is made anonymous, so no case
view shows a reporter any more. Her user id stays in the row, pointing at an account
identity has emptied.
"""

from __future__ import annotations

from sqlalchemy import select, update

from gridkit.privacy import PersonalData

from .tables import Case


class Cases(PersonalData):
    def export(self, runtime, session, user_id: str) -> dict:
        cases = session.scalars(select(Case).where(Case.reporter_id == user_id)
                                .order_by(Case.opened_at, Case.id)).all()
        return {"cases_from_my_petitions": [{
            "case_id": c.id, "petition_id": c.petition_id, "category": c.category, "channel": c.channel,
            "anonymous": c.anonymous, "state": c.state, "level": c.level, "opened_at": c.opened_at,
            "claimed_at": c.claimed_at, "resolved_at": c.resolved_at, "result": c.result,
            "closed_at": c.closed_at, "outcome": c.outcome, "rating": c.rating} for c in cases]}

    def erase(self, runtime, session, user_id: str, at) -> None:
        session.execute(update(Case).where(Case.reporter_id == user_id, Case.anonymous.is_(False))
                        .values(anonymous=True))
