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
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    any_,
    bindparam,
    delete,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from . import tracing
from .bus import Bus, BusUnavailable, Outgoing
from .db import OUTBOX_CHANNEL, Database, delete_in_chunks, insert_at_commit, keep_tidy, unavailable
from .events import Envelope, EventType

log = logging.getLogger(__name__)

ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER only

PUBLISHED = Counter("gridgov_outbox_published_total", "Events confirmed by the broker", ["service"])
UNROUTABLE = Counter("gridgov_outbox_unroutable_total", "Events no queue was bound for", ["service"])
PUBLISH_FAILURES = Counter("gridgov_outbox_publish_failures_total", "Failed publish attempts", ["service"])
BATCH_SECONDS = Histogram("gridgov_outbox_batch_seconds", "Time to publish one relay batch", ["service"])
PURGED = Counter("gridgov_outbox_purged_total", "Settled events deleted after the retention", ["service"])
FORGOTTEN = Counter("gridgov_inbox_forgotten_total", "Processed-event rows deleted after the retention",
                    ["service"])
SETTLED = ("sent", "unroutable")


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
        """Add an event to the caller's transaction; raises InvalidEvent (at once) if it
        breaks its schema.

        The row is written when the transaction commits, together with every other
        event it recorded, in one statement (:func:`gridkit.db.insert_at_commit`), in
        the order they were recorded."""
        envelope = Envelope.new(event_type, data, subject=subject, trace=tracing.outgoing())
        insert_at_commit(session, self.table, {
            "event_id": envelope.id, "exchange": event_type.exchange, "routing_key": event_type.type,
            "body": json.dumps(envelope.to_json(), ensure_ascii=False, separators=(",", ":")),
            "created_at": utcnow(), "status": "pending", "attempts": 0,
        })
        session.info["outbox_dirty"] = True
        return envelope

    def record_many(self, session: Session, event_type: EventType,
                    items: list[tuple[Any, str | None]]) -> None:
        """Many events of one type (bulk imports): :meth:`record` for each ``(data,
        subject)`` pair; like every event they are written at commit, together."""
        for data, subject in items:
            self.record(session, event_type, data, subject=subject)

    def pending_count(self, db: Database) -> int:
        with db.engine.connect() as conn:
            return conn.execute(select(func.count()).where(self.table.c.status == "pending")).scalar_one()

    def backlog(self, db: Database) -> tuple[int, datetime | None]:
        """How many events wait, and when the oldest of them was recorded (None: none waits)."""
        t = self.table
        with db.engine.connect() as conn:
            count, oldest = conn.execute(select(func.count(), func.min(t.c.created_at))
                                         .where(t.c.status == "pending")).one()
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)  # SQLite keeps no zone; we store UTC
        return count, oldest

    def measure(self, service: str, db: Database):
        """The backlog as metric families, for the worker's scrape (:mod:`gridkit.metrics`).

        Read from the table, not kept by the relay: a relay that has stopped, or cannot
        reach the broker, cannot report that its oldest event keeps getting older."""
        def measure() -> list[GaugeMetricFamily]:
            count, oldest = self.backlog(db)
            pending = GaugeMetricFamily("gridgov_outbox_pending", "Events waiting in the outbox",
                                        labels=["service"])
            pending.add_metric([service], count)
            age = GaugeMetricFamily("gridgov_outbox_oldest_pending_seconds",
                                    "How long the oldest event waiting in the outbox has waited (0: none waits)",
                                    labels=["service"])
            age.add_metric([service], max((utcnow() - oldest).total_seconds(), 0.0) if oldest else 0.0)
            return [pending, age]

        return measure


class Inbox:
    """Which events each consumer has processed: a redelivery finds its row and is skipped.

    Rows are kept for a retention (``GRIDGOV_INBOX_RETENTION_DAYS``, 30) that must
    outlast any redelivery: RabbitMQ's (minutes), a relay's after a crash (seconds),
    and a producer's outbox reset to pending for a replay, which is possible while
    its rows are kept (``GRIDGOV_OUTBOX_RETENTION_DAYS``, 7). Then the worker forgets
    them (:meth:`forget_processed`), so the table does not grow without bound."""

    def __init__(self, metadata: MetaData):
        self.table = Table(
            "inbox", metadata,
            Column("consumer", String(200), primary_key=True),
            Column("event_id", String(200), primary_key=True),
            Column("event_type", String(200), nullable=False),
            Column("processed_at", DateTime(timezone=True), nullable=False, default=utcnow),
            Index("ix_inbox_processed", "processed_at"),  # forgetting the oldest, a bounded scan
        )
        # Built once: every consumer transaction asks it first, and building the statement
        # cost as much as running it (0.6 -> 0.3 ms per call on a busy 2-core machine).
        c = self.table.c
        self._seen = select(c.event_id).where(c.consumer == bindparam("consumer"),
                                              c.event_id.in_(bindparam("ids", expanding=True)))

    def seen(self, session: Session, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these ``(consumer, event_id)`` pairs were processed: one query per consumer."""
        by_consumer: dict[str, list[str]] = {}
        for consumer, event_id in keys:
            by_consumer.setdefault(consumer, []).append(event_id)
        return {(consumer, event_id) for consumer, ids in by_consumer.items()
                for (event_id,) in session.execute(self._seen, {"consumer": consumer, "ids": ids})}

    def remember(self, session: Session, processed: list[tuple[str, str, str]]) -> None:
        """``(consumer, event_id, event_type)`` rows, written at commit with the transaction's
        other rows and events in one statement (:func:`gridkit.db.insert_at_commit`): a
        statement of their own was one of a handler's few on most events. A concurrent
        redelivery's row makes that commit fail (IntegrityError), as it did here."""
        now = utcnow()
        for consumer, event_id, event_type in processed:
            insert_at_commit(session, self.table, {
                "consumer": consumer, "event_id": event_id, "event_type": event_type, "processed_at": now})

    def forget(self, db: Database, before: datetime, *, chunk: int = 5000) -> int:
        """Delete the rows processed before ``before``, oldest first, ``chunk`` rows per
        transaction (short locks on a big backlog); return how many."""
        c = self.table.c
        oldest = select(c.consumer, c.event_id).where(c.processed_at < before).order_by(c.processed_at).limit(chunk)
        return delete_in_chunks(db, delete(self.table).where(tuple_(c.consumer, c.event_id).in_(oldest)), chunk)

    def forget_processed(self, runtime, stop: threading.Event) -> None:
        """The worker's background loop for every service that consumes: :meth:`forget`
        rows older than ``GRIDGOV_INBOX_RETENTION_DAYS`` every
        ``runtime.extras["inbox_purge_seconds"]`` (600), and once at start."""
        retention = timedelta(days=runtime.settings.inbox_retention_days)

        def tidy() -> int:
            n = self.forget(runtime.db, utcnow() - retention)
            FORGOTTEN.labels(runtime.spec.name).inc(n)
            return n

        keep_tidy(stop, runtime.extras.get("inbox_purge_seconds", 600.0), tidy, "processed event ids")


class Relay:
    """Publishes the outbox. Run one or many; each batch is taken under row locks.

    ``linger``: when events come faster than one per ``linger`` seconds, the relay
    waits that long before taking the next batch, so that they go out together. A
    batch costs about the same for one event as for fifty (two statements, one wait
    for the broker's confirms, one scan for pending rows); under load that wait is
    what keeps the relay's, PostgreSQL's and RabbitMQ's CPU per event small. At a
    trickle it never waits. Under heavy load the wait stretches
    (:func:`next_linger`): up to ``max_linger`` while events keep coming at
    ``full_enough`` or more per ``linger`` (400/s by default: above a storm's 200
    events/s per service, below a saturated web's 500–900), back to ``linger`` as soon
    as they do not, so a moderate stream is not delayed for a saving it does not need.

    ``retention``: settled rows (sent, unroutable) are kept that long, for whoever
    wants to see what was published, then deleted (:meth:`purge`, every
    ``purge_every`` seconds while the relay runs), so the outbox does not grow
    without bound. Pending rows are never deleted.

    ``rescan_every``: each take looks only from the lowest id of the batch before
    last. A row marked sent leaves a dead "pending" entry in the index until
    VACUUM, and a take from the start walked all of them: 2–7 ms per take after
    20 000–60 000 events, where it takes 0.2–0.4 ms from the floor. A row below
    the floor that is still pending (its transaction committed late, or its
    publish failed while later ones went out) is found by a take from the start,
    every ``rescan_every`` seconds.
    """

    def __init__(self, service: str, db: Database, outbox: Outbox, bus: Bus, *,
                 batch_size: int = 500, poll_interval: float = 1.0, linger: float = 0.01,
                 max_linger: float = 0.05, full_enough: int = 4,
                 retention: timedelta = timedelta(days=7), purge_every: float = 600.0,
                 rescan_every: float = 1.0):
        self.service = service
        for metric in (PUBLISHED, UNROUTABLE, PUBLISH_FAILURES, BATCH_SECONDS, PURGED):
            metric.labels(service)  # exposed from the start, so that rates and alerts begin at 0
        self.db = db
        self.table = outbox.table
        self.bus = bus
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.linger = linger
        self.max_linger = max(max_linger, linger)
        self.full_enough = full_enough
        self.retention = retention
        self.purge_every = purge_every
        self._stop = threading.Event()
        self._listener = None
        self._next_purge = time.monotonic()  # at start, then every purge_every
        self.rescan_every = rescan_every
        self._floor, self._last_low = 0, 0  # where the next take starts; the last batch's lowest id
        self._next_rescan = time.monotonic()
        # Built once: constructing a statement cost as much as running it.
        t = self.table
        take = (select(t.c.id, t.c.event_id, t.c.exchange, t.c.routing_key, t.c.body, t.c.attempts)
                .where(t.c.status == "pending", t.c.id >= bindparam("floor")).order_by(t.c.id).limit(batch_size))
        self._take = take if db.is_sqlite else take.with_for_update(skip_locked=True)
        # PostgreSQL takes the ids as one array parameter: an expanding IN is compiled
        # again for every batch size.
        ids = t.c.id.in_(bindparam("ids", expanding=True)) if db.is_sqlite else \
            t.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger)))
        self._mark_sent = update(t).where(ids).values(status="sent", sent_at=bindparam("now"))
        self._mark_failed = update(t).where(ids).values(attempts=t.c.attempts + 1, last_error=bindparam("error"))

    def run_once(self) -> int:
        """Publish one batch; return how many rows were settled (sent or unroutable).

        The rows stay locked until the broker has answered, so a concurrent relay
        skips them; a row is marked sent only after its confirm. Raises
        BusUnavailable (after counting the attempt) when the broker is gone.
        """
        started = time.perf_counter()
        error: str | None = None
        with self.db.engine.begin() as conn:
            rows = conn.execute(self._take, {"floor": self._take_from()}).all()
            if not rows:
                return 0
            # The next take starts at the previous batch: a row of this range committed
            # a moment late is still in sight, and few dead entries lie above it.
            self._floor, self._last_low = self._last_low, rows[0].id
            messages = [Outgoing(r.event_id, r.exchange, r.routing_key, r.body.encode(),
                                 {"x-gridgov-outbox-attempts": r.attempts + 1}) for r in rows]
            try:
                result = self.bus.publish_batch(messages)
            except BusUnavailable as exc:
                error = str(exc) or type(exc).__name__
                conn.execute(self._mark_failed, {"ids": [r.id for r in rows], "error": error[:2000]})
                _log_first_failures(rows, error)
            else:
                self._settle(conn, rows, result)
        if error is not None:
            # Raised after the commit: the attempt and its error stay on the rows.
            PUBLISH_FAILURES.labels(self.service).inc(len(rows))
            raise BusUnavailable(error)
        settled = len(result.confirmed) + len(result.returned)
        PUBLISHED.labels(self.service).inc(len(result.confirmed))
        UNROUTABLE.labels(self.service).inc(len(result.returned))
        PUBLISH_FAILURES.labels(self.service).inc(len(result.failed))
        BATCH_SECONDS.labels(self.service).observe(time.perf_counter() - started)
        return settled

    def _take_from(self) -> int:
        if time.monotonic() >= self._next_rescan:
            self._next_rescan = time.monotonic() + self.rescan_every
            return 0
        return self._floor

    def _settle(self, conn, rows, result) -> None:
        t = self.table
        now = utcnow()
        by_event = {r.event_id: r.id for r in rows}
        # Only ids of this batch count (a confirm can't name anything else, but be strict).
        result.confirmed &= set(by_event)
        sent = [by_event[e] for e in result.confirmed]
        for chunk in _chunks(sent, 1000):
            conn.execute(self._mark_sent, {"ids": chunk, "now": now})
        for event_id, reason in result.returned.items():
            if event_id in by_event:
                # Nobody subscribes to it yet: settled, visible in metrics and the row.
                conn.execute(update(t).where(t.c.id == by_event[event_id]).values(
                    status="unroutable", sent_at=now, last_error=reason[:2000]))
        failed = [by_event[e] for e in result.failed if e in by_event]
        if failed:
            reason = next(iter(result.failed.values()))
            _log_first_failures([r for r in rows if r.event_id in result.failed], reason)
            for chunk in _chunks(failed, 1000):
                conn.execute(self._mark_failed, {"ids": chunk, "error": reason[:2000]})

    def purge(self, now: datetime | None = None, *, chunk: int = 5000) -> int:
        """Delete rows settled before ``now - retention``, oldest first, ``chunk`` rows per
        transaction (short locks on a big backlog); return how many.

        Rows are settled in about ``id`` order, so each round looks only at the
        ``chunk`` lowest ids (a bounded index scan, however many rows are within the
        retention) and stops at the first round that finds a young one among them."""
        t = self.table
        cutoff = (now or utcnow()) - self.retention
        purged = 0
        for status in SETTLED:
            oldest = select(t.c.id).where(t.c.status == status).order_by(t.c.id).limit(chunk)
            purged += delete_in_chunks(self.db, delete(t).where(t.c.id.in_(oldest.scalar_subquery()),
                                                                t.c.sent_at < cutoff), chunk)
        PURGED.labels(self.service).inc(purged)
        return purged

    def _purge_when_due(self) -> None:
        if time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + self.purge_every
        try:
            if n := self.purge():
                log.info("outbox purged", extra={"rows": n, "retention_days": self.retention / timedelta(days=1)})
        except Exception:  # noqa: BLE001 - housekeeping; publishing goes on, next time it retries
            log.exception("outbox purge failed")

    def drain(self, timeout: float = 30.0) -> int:
        """Publish until the outbox is empty (tests, CLI); return how many rows this relay settled.

        Rows locked by another relay count as pending until it settles them.
        BusUnavailable propagates: draining against a dead broker fails at once.
        """
        deadline = time.monotonic() + timeout
        settled = 0
        while True:
            n = self.run_once()
            settled += n
            if not n:
                if not self._has_pending():
                    return settled
                self._next_rescan = 0  # pending rows below the floor, or another relay's batch
                self._stop.wait(0.01)
            if time.monotonic() > deadline:
                raise TimeoutError("outbox not drained in time")

    def flush(self, deadline: float) -> int:
        """At shutdown (after :meth:`stop`): publish what is pending, batch by batch, until a
        batch is not full (caught up; under a steady stream there is always more) or the
        ``deadline`` (a ``time.monotonic()``) passes. What is left waits for the next relay.
        Returns how many rows were settled."""
        self._next_rescan = 0  # from the lowest id: nothing pending is left behind
        settled = 0
        while time.monotonic() < deadline:
            try:
                n = self.run_once()
            except Exception as exc:  # noqa: BLE001 - the outbox keeps them; nothing is lost
                log.warning("outbox not flushed at stop: the next relay publishes it", extra={"error": str(exc)})
                break
            settled += n
            if n < self.batch_size:
                break
        return settled

    def _has_pending(self) -> bool:
        with self.db.engine.connect() as conn:
            return conn.execute(select(self.table.c.id).where(self.table.c.status == "pending").limit(1)).first() is not None

    def stop(self) -> None:
        self._stop.set()
        self.db.outbox_committed.set()

    def close(self) -> None:
        self._close_listener()

    def run_forever(self) -> None:
        """Publish as soon as a transaction with events commits; poll as a fallback."""
        backoff = 0.5
        busy, finished, linger = False, float("-inf"), self.linger
        if not self.db.is_sqlite:
            try:
                self._listen()  # before the first take: no commit after it goes unheard
            except Exception:  # noqa: BLE001 - the wait tries again, and polls meanwhile
                self._close_listener()
        while not self._stop.is_set():
            if not busy and time.monotonic() - finished < linger:
                self._stop.wait(linger)  # events come fast: let the next ones join this batch
            # Cleared before the batch: a commit from now on wakes the next wait.
            self.db.outbox_committed.clear()
            try:
                taken = self.run_once()
                busy = taken >= self.batch_size
                finished = time.monotonic()
                linger = next_linger(linger, taken, shortest=self.linger, longest=self.max_linger,
                                     full_enough=self.full_enough)
                backoff = 0.5
            except BusUnavailable as exc:
                # Short retries: each connect attempt is bounded, and a long wait
                # here delays every event behind it once the broker is back.
                log.warning("bus unavailable, outbox keeps the events: %s", exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 3)
                continue
            except Exception as exc:  # keep the relay alive whatever happens
                if unavailable(exc):
                    # The outbox is in that database: nothing to publish until it is back,
                    # and nothing lost meanwhile. Retry soon: events wait behind this.
                    log.warning("database unavailable, relay waits: %s", getattr(exc, "orig", exc))
                    self._close_listener()
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 3)
                else:
                    log.exception("relay batch failed")
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 10)
                continue
            if not busy:
                self._purge_when_due()
                self._wait_for_commit()
        self._close_listener()

    def _wait_for_commit(self) -> None:
        if self.db.is_sqlite:
            self.db.outbox_committed.wait(self.poll_interval)
            return
        # Every commit with events sends a NOTIFY, ours too: it alone wakes the relay here.
        # (Our own commits also set the process's event, a moment after their NOTIFY has
        # arrived: waking for both took nothing the second time, three statements for
        # nothing after most of this process's commits.) Wait in short slices so that
        # stop() is noticed at once.
        deadline = time.monotonic() + self.poll_interval
        try:
            listener = self._listen()
            while not self._stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if any(True for _ in listener.notifies(timeout=min(remaining, 0.2), stop_after=1)):
                    break
        except Exception:  # noqa: BLE001 - fall back to polling
            self._close_listener()
            self.db.outbox_committed.wait(max(deadline - time.monotonic(), 0))

    def _listen(self):
        if self._listener is None or self._listener.closed:
            import psycopg

            # The engine's own arguments: every host of a multi-host URL, read-write only.
            self._listener = psycopg.connect(**self.db.connect_arguments(), autocommit=True)
            self._listener.execute(f"LISTEN {OUTBOX_CHANNEL}")
        return self._listener

    def _close_listener(self) -> None:
        if self._listener is not None:
            try:
                self._listener.close()
            except Exception:  # noqa: BLE001
                pass
        self._listener = None


def next_linger(current: float, taken: int, *, shortest: float, longest: float, full_enough: int = 4) -> float:
    """The relay's next wait, after a batch that settled ``taken`` events gathered in a
    wait of ``current``.

    Events at ``full_enough`` or more per ``shortest`` wait come faster than the wait
    gathers cheaply: wait twice as long next time, up to ``longest``. Measured at
    saturation on two cores, 50 ms instead of 10 ms halved the relay's CPU per event
    and cut PostgreSQL's by a third. A slower stream goes back to ``shortest`` at once:
    the rate, not the batch, decides, because a batch of a stretched wait is larger
    by itself. Judged by the batch (8 or more), the relay of a service publishing
    200 events/s kept waiting 50 ms for no saving, and at 100 petitions/s the
    offer's p99 was 20–37 % higher for it (docs/benchmarks.md)."""
    if taken * shortest >= full_enough * current:
        return min(current * 2, longest)
    return shortest


def _log_first_failures(rows, error: str) -> None:
    """A warning per event whose publish failed for the first time, with its id, type
    and trace (later attempts of the same row are counted, not logged again: an outage
    of an hour would otherwise repeat every pending event every few seconds)."""
    for row in rows:
        if row.attempts == 0:
            try:
                traceparent = json.loads(row.body).get("traceparent")
            except ValueError:
                traceparent = None
            log.warning("publish failed, the event waits in the outbox", extra={
                "event_id": row.event_id, "event_type": row.routing_key, "error": error[:500],
                **tracing.ids(traceparent)})


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]
