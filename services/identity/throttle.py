"""Attempts counted in the database under sliding-window limits, shared by every worker
and pod: failed logins (per login name and per client address) and requests for one-time
codes (per phone and per client address).

An attempt is *reserved* (inserted and committed) before it is counted, so two concurrent
attempts always see each other: with 100 on record, no 101st slips through between a
check and a write. A refused attempt is deleted again: it must not extend the wait.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from gridkit.problems import Problem

from . import domain


class Throttle:
    def __init__(self, db, model, *, at: str, detail: str, type: str):
        self.db = db
        self.model = model
        self.at = getattr(model, at)
        self.detail = detail
        self.type = type

    def reserve(self, values: dict[str, str], limits: list[tuple[domain.Limit, str]]) -> int:
        """Record an attempt with ``values`` (column → value) and check each ``(limit, column)``
        for the value the attempt has in that column; 429 with Retry-After when one is
        exceeded. Returns the attempt's id (see :meth:`release`)."""
        now = datetime.now(UTC)
        with self.db.transaction() as session:
            attempt_id = session.execute(insert(self.model).values(**values, **{self.at.key: now})
                                         .returning(self.model.id)).scalar_one()
        with self.db.transaction() as session:
            waits = [domain.retry_after(limit, self._times(session, column, values[column], now - limit.window), now)
                     for limit, column in limits]
            waits = [w for w in waits if w]
            if waits:
                self.release(session, attempt_id)
        if waits:
            raise Problem(429, self.detail, type=self.type, headers={"Retry-After": str(max(waits))})
        return attempt_id

    def release(self, session: Session, attempt_id: int) -> None:
        """Forget the attempt (refused, or a login that succeeded)."""
        session.execute(delete(self.model).where(self.model.id == attempt_id))

    def _times(self, session: Session, column: str, value: str, since: datetime) -> list[datetime]:
        return [t if t.tzinfo else t.replace(tzinfo=UTC) for t in session.scalars(
            select(self.at).where(getattr(self.model, column) == value, self.at > since)
            .order_by(self.at, self.model.id))]
