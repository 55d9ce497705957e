"""A disabled account stops working in every service within seconds.

identity publishes ``identity.user.disabled`` (``contracts.identity``) with the
moment it took effect. Every service's worker keeps it as a row of the kit's
``access_revocations`` table in the service's own database (the kit subscribes
every service on the queue ``<service>.accounts``; no service wires it), and
every web process reads the recent rows at most once a second and refuses the
subject's access tokens issued up to that moment. A token issued later — the
account enabled again and logged in afresh — is accepted.

Only revocations younger than the longest access-token lifetime can refuse a
token that has not expired by itself, so each read asks for those few rows
alone, and the worker deletes rows older than a day.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter
from sqlalchemy import Column, DateTime, Index, MetaData, String, Table, delete, insert, select

from .auth import Principal
from .db import Database, keep_tidy

log = logging.getLogger(__name__)

TABLE = "access_revocations"
# Access tokens live 10 minutes (identity); anything this old has expired by itself.
TOKEN_LIFETIME_BOUND = timedelta(hours=1)
KEEP_FOR = timedelta(days=1)

REFUSED = Counter("gridgov_access_refused_total", "Access tokens refused because the account was disabled",
                  ["service"])


def table(metadata: MetaData) -> Table:
    """The kit's table in every service's database (added by ``gridkit.db.declarative_base``)."""
    return Table(
        TABLE, metadata,
        Column("subject", String(64), primary_key=True),
        # Access tokens of the subject issued up to this moment (their iat) are refused.
        Column("revoked_until", DateTime(timezone=True), primary_key=True),
        Index("ix_access_revocations_revoked_until", "revoked_until"),
    )


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def record(session, metadata: MetaData, subject: str, until: datetime) -> None:
    """Remember that ``subject``'s tokens issued up to ``until`` are refused (idempotent)."""
    t = metadata.tables[TABLE]
    if session.execute(select(t.c.subject).where(t.c.subject == subject, t.c.revoked_until == until)).first():
        return
    session.execute(insert(t).values(subject=subject, revoked_until=until))


def forget(db: Database, metadata: MetaData, before: datetime) -> int:
    """Delete revocations older than ``before`` (a handful a day: one statement)."""
    with db.engine.begin() as conn:
        return conn.execute(delete(metadata.tables[TABLE]).where(
            metadata.tables[TABLE].c.revoked_until < before)).rowcount


class RevokedAccess:
    """One process's view of the recent revocations, read again at most every ``every`` seconds.

    ``refuses(principal)`` is a dictionary lookup; once a second one request pays for a
    small indexed query (the rows of the last hour). While the database cannot be read
    the last view stands and the read is tried again on the next request."""

    def __init__(self, service: str, db: Database, metadata: MetaData, *, every: float = 1.0):
        self.service = service
        self.db = db
        self.table = metadata.tables[TABLE]
        self.every = every
        self._until: dict[str, float] = {}
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def refuses(self, principal: Principal) -> bool:
        if time.monotonic() - self._read_at >= self.every:
            self.read()
        until = self._until.get(principal.subject)
        refused = until is not None and (principal.issued_at is None or principal.issued_at <= until)
        if refused:
            REFUSED.labels(self.service).inc()
        return refused

    def read(self) -> None:
        if not self._lock.acquire(blocking=False):
            return  # another thread is reading; the current view serves meanwhile
        try:
            t = self.table
            since = utcnow() - TOKEN_LIFETIME_BOUND
            until: dict[str, float] = {}
            with self.db.engine.connect() as conn:
                for subject, moment in conn.execute(select(t.c.subject, t.c.revoked_until)
                                                    .where(t.c.revoked_until > since)):
                    until[subject] = max(until.get(subject, 0.0), aware(moment).timestamp())
            self._until = until
        except Exception:  # noqa: BLE001 - keep the last view; the request goes on
            log.warning("could not read access revocations; using the last view", exc_info=True)
        finally:
            self._read_at = time.monotonic()
            self._lock.release()


def subscribe(subscriptions, metadata: MetaData) -> None:
    """The kit's own queue in every service, ``<service>.accounts``."""
    from contracts.identity import USER_DISABLED

    queue = subscriptions.queues.get(f"{subscriptions.consumer}.accounts")
    if queue is not None and USER_DISABLED.type in queue.handlers:
        return  # already subscribed (a spec built twice over the same subscriptions); a service's
        # own handlers of the event on its other queues (grids' staffing, dispatch's cases) do not count

    @subscriptions.on(USER_DISABLED, purpose="accounts")
    def refuse_older_tokens(session, event) -> None:
        record(session, metadata, event.data["user_id"], event.data["at"])


def forget_old(runtime, stop: threading.Event) -> None:
    """The worker's loop: delete revocations older than a day, at start and every hour."""
    metadata = runtime.spec.base.metadata
    keep_tidy(stop, runtime.extras.get("revocations_purge_seconds", 3600.0),
              lambda: forget(runtime.db, metadata, utcnow() - KEEP_FOR), "access revocations")
