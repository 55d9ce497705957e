"""The categories as a submission needs them, read at most once a second per process.

A submission only needs a category's network and deadlines; reading the
table for each one cost a query per petition. Each process keeps the whole
(small) catalogue and re-reads it when it is a second old, or at once when a
code is unknown (created a moment ago elsewhere). An admin's change shows in
this process at once and in the others within a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from .tables import Category

FRESH_SECONDS = 1.0


@dataclass(frozen=True)
class CategoryRule:
    code: str
    network: str
    claim_minutes: int
    handle_hours: int
    handle_minutes: int | None
    working_hours: bool
    active: bool


class Categories:
    def __init__(self, fresh_seconds: float = FRESH_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.fresh_seconds = fresh_seconds
        self.clock = clock
        self._rules: dict[str, CategoryRule] = {}
        self._read_at: float | None = None
        self._lock = threading.Lock()

    def get(self, session: Session, code: str) -> CategoryRule | None:
        if self._stale() or code not in self._rules:
            self._read(session, code)
        return self._rules.get(code)

    def forget(self) -> None:
        """A category changed in this process: read again on the next use."""
        self._read_at = None

    def _stale(self) -> bool:
        return self._read_at is None or self.clock() - self._read_at > self.fresh_seconds

    def _read(self, session: Session, code: str) -> None:
        with self._lock:
            if not self._stale() and code in self._rules:
                # Another thread read it while this one waited: under load every request
                # in flight when the second ran out would otherwise read it again.
                return
            self._rules = {c.code: CategoryRule(c.code, c.network, c.claim_minutes, c.handle_hours,
                                                c.handle_minutes, bool(c.working_hours), bool(c.active))
                           for c in session.scalars(select(Category))}
            self._read_at = self.clock()
