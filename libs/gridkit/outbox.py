"""Transactional outbox and inbox.

Producer side: :meth:`Outbox.record` adds the event row in the caller's
transaction, so the business change and the event commit together. A
:class:`Relay` publishes pending rows with confirms, marks them sent only
after the confirm, retries what failed, and takes rows with ``FOR UPDATE
SKIP LOCKED`` so several relays never send the same row at once.

Consumer side: :class:`Inbox` remembers processed event ids in the
handler's own transaction, which makes redelivery harmless.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session

from .bus import Bus, BusUnavailable, Outgoing
from .db import OUTBOX_CHANNEL, Database
from .events import Envelope, EventType

log = logging.getLogger(__name__)

ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER only

PUBLISHED = Counter("gridgov_outbox_published_total", "Events confirmed by the broker", ["service"])
UNROUTABLE = Counter("gridgov_outbox_unroutable_total", "Events no queue was bound for", ["service"])
PUBLISH_FAILURES = Counter("gridgov_outbox_publish_failures_total", "Failed publish attempts", ["service"])
PENDING = Gauge("gridgov_outbox_pending", "Events waiting in the outbox", ["service"],
                multiprocess_mode="max")
BATCH_SECONDS = Histogram("gridgov_outbox_batch_seconds", "Time to publish one relay batch", ["service"])


def utcnow() -> datetime:
    return datetime.now(UTC)


class Outbox:
    def __init__(self, metadata: MetaData):
        self.table = Table(
            "outbox", metadata,
            Column("id", ID, primary_key=True, autoincrement=True),
            Column("event_id", String(36), nullable=False, unique=True),
            Column("exchange", String(200), nullable=False),
            Column("routing_key", String(200), nullable=False),
            Column("body", Text, nullable=False),
            Column("created_at", DateTime(timezone=True), nullable=False, default=utcnow),
            Column("sent_at", DateTime(timezone=True)),
            Column("status", String(16), nullable=False, default="pending"),
            Column("attempts", Integer, nullable=False, default=0),
            Column("last_error", Text),
            Index("ix_outbox_pending", "status", "id"),
        )

    def record(self, session: Session, event_type: EventType, data: Any, *,
               subject: str | None = None) -> Envelope:
        """Add an event to the caller's transaction; raises InvalidEvent if it breaks its schema."""
        envelope = Envelope.new(event_type, data, subject=subject)
        session.execute(insert(self.table).values(
            event_id=envelope.id, exchange=event_type.exchange, routing_key=event_type.type,
            body=json.dumps(envelope.to_json(), ensure_ascii=False, separators=(",", ":")),
            created_at=utcnow(), status="pending", attempts=0,
        ))
        session.info["outbox_dirty"] = True
        return envelope

    def pending_count(self, db: Database) -> int:
        with db.engine.connect() as conn:
            return conn.execute(select(func.count()).where(self.table.c.status == "pending")).scalar_one()


class Inbox:
    def __init__(self, metadata: MetaData):
        self.table = Table(
            "inbox", metadata,
            Column("consumer", String(200), primary_key=True),
            Column("event_id", String(200), primary_key=True),
            Column("event_type", String(200), nullable=False),
            Column("processed_at", DateTime(timezone=True), nullable=False, default=utcnow),
        )

    def seen(self, session: Session, consumer: str, event_id: str) -> bool:
        row = session.execute(select(self.table.c.event_id).where(
            self.table.c.consumer == consumer, self.table.c.event_id == event_id)).first()
        return row is not None

    def remember(self, session: Session, consumer: str, envelope: Envelope) -> None:
        session.execute(insert(self.table).values(
            consumer=consumer, event_id=envelope.id, event_type=envelope.type, processed_at=utcnow()))


class Relay:
    """Publishes the outbox. Run one or many; each batch is taken under row locks."""

    def __init__(self, service: str, db: Database, outbox: Outbox, bus: Bus, *,
                 batch_size: int = 500, poll_interval: float = 1.0):
        self.service = service
        self.db = db
        self.table = outbox.table
        self.bus = bus
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self._stop = threading.Event()
        self._listener = None

    def run_once(self) -> int:
        """Publish one batch; return how many rows were settled (sent or unroutable)."""
        t = self.table
        started = time.perf_counter()
        with self.db.engine.begin() as conn:
            query = (select(t.c.id, t.c.event_id, t.c.exchange, t.c.routing_key, t.c.body, t.c.attempts)
                     .where(t.c.status == "pending").order_by(t.c.id).limit(self.batch_size))
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            rows = conn.execute(query).all()
            if not rows:
                return 0
            messages = [Outgoing(r.event_id, r.exchange, r.routing_key, r.body.encode(),
                                 {"x-gridgov-outbox-attempts": r.attempts + 1}) for r in rows]
            try:
                result = self.bus.publish_batch(messages)
            except BusUnavailable as exc:
                PUBLISH_FAILURES.labels(self.service).inc(len(rows))
                result = None
                error = str(exc)
            now = utcnow()
            if result is None:
                conn.execute(update(t).where(t.c.id.in_([r.id for r in rows]))
                             .values(attempts=t.c.attempts + 1, last_error=error[:2000]))
                raise BusUnavailable(error)
            by_event = {r.event_id: r.id for r in rows}
            sent = [by_event[e] for e in result.confirmed]
            if sent:
                conn.execute(update(t).where(t.c.id.in_(sent)).values(status="sent", sent_at=now))
            for event_id, reason in result.returned.items():
                # Nobody subscribes to it yet: settled, visible in metrics and the row.
                conn.execute(update(t).where(t.c.id == by_event[event_id]).values(
                    status="unroutable", sent_at=now, last_error=reason[:2000]))
            for event_id, reason in result.failed.items():
                conn.execute(update(t).where(t.c.id == by_event[event_id]).values(
                    attempts=t.c.attempts + 1, last_error=reason[:2000]))
        PUBLISHED.labels(self.service).inc(len(sent))
        UNROUTABLE.labels(self.service).inc(len(result.returned))
        PUBLISH_FAILURES.labels(self.service).inc(len(result.failed))
        BATCH_SECONDS.labels(self.service).observe(time.perf_counter() - started)
        return len(sent) + len(result.returned)

    def drain(self, timeout: float = 30.0) -> None:
        """Publish until the outbox is empty (tests, CLI)."""
        deadline = time.monotonic() + timeout
        while self.run_once() or self._has_pending():
            if time.monotonic() > deadline:
                raise TimeoutError("outbox not drained in time")

    def _has_pending(self) -> bool:
        with self.db.engine.connect() as conn:
            return conn.execute(select(self.table.c.id).where(self.table.c.status == "pending").limit(1)).first() is not None

    def stop(self) -> None:
        self._stop.set()
        self.db.outbox_committed.set()

    def run_forever(self) -> None:
        """Publish as soon as a transaction with events commits; poll as a fallback."""
        backoff = 0.5
        while not self._stop.is_set():
            try:
                busy = self.run_once() >= self.batch_size
                backoff = 0.5
                PENDING.labels(self.service).set(0 if not busy else self.batch_size)
            except BusUnavailable as exc:
                log.warning("bus unavailable, outbox keeps the events", extra={"error": str(exc)})
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10)
                continue
            except Exception:  # database down or similar: keep the relay alive
                log.exception("relay batch failed")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10)
                continue
            if not busy:
                self._wait_for_commit()

    def _wait_for_commit(self) -> None:
        if self.db.is_sqlite:
            self.db.outbox_committed.wait(self.poll_interval)
            self.db.outbox_committed.clear()
            return
        # Other processes' commits arrive as NOTIFY; our own as the event.
        try:
            listener = self._listen()
            if self.db.outbox_committed.is_set():
                self.db.outbox_committed.clear()
                return
            for _ in listener.notifies(timeout=self.poll_interval, stop_after=1):
                break
            self.db.outbox_committed.clear()
        except Exception:  # noqa: BLE001 - fall back to polling
            self._close_listener()
            self.db.outbox_committed.wait(self.poll_interval)
            self.db.outbox_committed.clear()

    def _listen(self):
        if self._listener is None or self._listener.closed:
            import psycopg

            url = self.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            self._listener = psycopg.connect(url, autocommit=True, connect_timeout=5)
            self._listener.execute(f"LISTEN {OUTBOX_CHANNEL}")
        return self._listener

    def _close_listener(self) -> None:
        if self._listener is not None:
            try:
                self._listener.close()
            except Exception:  # noqa: BLE001
                pass
        self._listener = None
