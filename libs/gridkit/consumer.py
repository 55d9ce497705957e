"""Consumers: idempotent handlers, retries, dead letters with reasons.

A service lists what it listens to in one readable place::

    subscriptions = Subscriptions("grids")

    @subscriptions.on(USER_REGISTERED, purpose="people")
    def remember_person(session, event): ...

The :class:`Worker` owns the durable queue ``grids.people``, validates every
message against the declared schema, runs the handler inside the service's
unit of work together with the inbox row, and acks only after commit.
A message that breaks its contract goes straight to the dead-letter queue
with the reason; one whose handler keeps failing goes there after
``max_attempts``. Redelivered messages are skipped by the inbox.

Under load the worker takes every message already waiting (up to
``batch_size``) and handles them in order in *one* transaction: one commit,
one inbox query and one inbox insert for the lot. That is what lets a
consumer keep up at tens of events a second. If any handler in the batch
fails, the batch is rolled back and its messages are handled again one by
one, each in its own transaction, so one bad message only costs itself.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Collection
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kombu
from kombu.mixins import ConsumerProducerMixin
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.exc import IntegrityError

from . import tracing
from .bus import CONTENT_TYPE, DEAD_LETTER_EXCHANGE, Bus, dead_letter_queue_name
from .db import Database, unavailable
from .events import Envelope, EventType, InvalidEvent, lookup
from .outbox import Inbox

log = logging.getLogger(__name__)

CONSUMED = Counter("gridgov_events_consumed_total", "Messages taken from queues, by outcome",
                   ["queue", "outcome"])
HANDLER_SECONDS = Histogram("gridgov_event_handler_seconds", "Time spent in event handlers", ["queue"])
BATCH_SIZE = Histogram("gridgov_event_batch_size", "Messages handled together in one transaction",
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128))

ATTEMPTS_HEADER = "x-gridgov-attempts"
REASON_HEADER = "x-gridgov-reason"


@dataclass(frozen=True)
class Event:
    """What a handler receives: the envelope with its data checked and loaded."""

    id: str
    type: str
    source: str
    time: str
    subject: str | None
    data: dict
    # The W3C trace context the event carried (CloudEvents distributed tracing), if any.
    traceparent: str | None = None
    tracestate: str | None = None


Handler = Callable[[Any, Event], None]


@dataclass
class Subscription:
    queue: str
    handlers: dict[str, tuple[EventType, Handler]] = field(default_factory=dict)

    @property
    def bindings(self) -> list[tuple[str, str]]:
        return [(et.exchange, et.type) for et, _ in self.handlers.values()]


class Subscriptions:
    def __init__(self, consumer: str):
        self.consumer = consumer
        self.queues: dict[str, Subscription] = {}

    def on(self, event_type: EventType, *, purpose: str) -> Callable[[Handler], Handler]:
        queue = f"{self.consumer}.{purpose}"

        def register(handler: Handler) -> Handler:
            sub = self.queues.setdefault(queue, Subscription(queue))
            if event_type.type in sub.handlers:
                raise ValueError(f"{queue} already handles {event_type.type}")
            sub.handlers[event_type.type] = (event_type, handler)
            return handler

        return register

    def describe(self) -> list[dict]:
        return [{"queue": s.queue, "events": sorted(s.handlers)} for s in self.queues.values()]

    def measure(self, bus: Bus):
        """Each queue's depth and its dead letters, as metric families for the worker's
        scrape (:mod:`gridkit.metrics`): a consumer falling behind, and messages waiting
        for someone to look at them, without access to RabbitMQ's own metrics."""
        def measure() -> list[GaugeMetricFamily]:
            queues = list(self.queues)
            depths = bus.depths([*queues, *map(dead_letter_queue_name, queues)])
            ready = GaugeMetricFamily("gridgov_queue_messages_ready", "Messages waiting in a consumer's queue",
                                      labels=["queue"])
            dead = GaugeMetricFamily("gridgov_queue_dead_letters", "Messages in a consumer queue's dead letters",
                                     labels=["queue"])
            for queue in queues:
                if queue in depths:
                    ready.add_metric([queue], depths[queue])
                if (dlq := dead_letter_queue_name(queue)) in depths:
                    dead.add_metric([queue], depths[dlq])
            return [ready, dead]

        return measure


@dataclass
class Incoming:
    """One message taken from a queue, not yet settled."""

    sub: Subscription
    body: bytes | str
    headers: dict
    message_id: str = ""
    message: Any = None  # the kombu message to ack; None when handed in directly (tests)
    event: Event | None = None  # once parsed
    span: Any = None  # the consumer span it was handled in, for the log line after the ack


class Outcome:
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    RETRIED = "retried"
    DEAD_LETTERED = "dead_lettered"
    REQUEUED = "requeued"
    ALL = (PROCESSED, DUPLICATE, RETRIED, DEAD_LETTERED, REQUEUED)


class Worker(ConsumerProducerMixin):
    """Consumes every queue of one service's subscriptions."""

    def __init__(self, subscriptions: Subscriptions, db: Database, inbox: Inbox, bus: Bus, *,
                 max_attempts: int = 5, prefetch: int = 64, batch_size: int = 64,
                 on_outcome: Callable[[str, str, str], None] | None = None,
                 queues: Collection[str] | None = None):
        self.subscriptions = subscriptions
        self.only = set(queues) if queues is not None else None
        self.db = db
        self.inbox = inbox
        self.bus = bus
        self.max_attempts = max_attempts
        self.prefetch = prefetch
        self.batch_size = max(1, batch_size)
        self.on_outcome = on_outcome
        for sub in subscriptions.queues.values():  # exposed from the start, so that alerts begin at 0
            if self.only is None or sub.queue in self.only:
                HANDLER_SECONDS.labels(sub.queue)
                for outcome in Outcome.ALL:
                    CONSUMED.labels(sub.queue, outcome)
        self._taken: list[Incoming] = []  # received in this round, settled together
        self._consuming: kombu.Connection | None = None
        # In memory an empty queue is polled; kombu's default (1 s) is too slow for embedded mode.
        self.connection = kombu.Connection(bus.url, connect_timeout=bus.timeout,
                                           heartbeat=0 if bus.is_memory else 30,
                                           transport_options={"polling_interval": 0.05} if bus.is_memory else {})
        self.ready = threading.Event()
        for sub in subscriptions.queues.values():
            if self.only is None or sub.queue in self.only:
                # Every series from the start at zero: increase() misses the first
                # message of a series that appears with it.
                for outcome in Outcome.ALL:
                    CONSUMED.labels(sub.queue, outcome)
                HANDLER_SECONDS.labels(sub.queue)

    @property
    def producer_connection(self) -> kombu.Connection:
        """Retries and dead letters go out confirmed, on a connection of their own.

        No heartbeats there: nothing would send them while it idles, and every
        publish waits for its confirm (bounded), reconnecting if it was dropped.
        """
        if self._producer_connection is None:
            options = {} if self.bus.is_memory else {"confirm_publish": True}
            conn = kombu.Connection(self.bus.url, connect_timeout=self.bus.timeout, heartbeat=0,
                                    transport_options=options)
            conn.ensure_connection(self.on_connection_error, self.connect_max_retries)
            self._producer_connection = conn  # type: ignore[assignment]
        return self._producer_connection  # type: ignore[return-value]

    # -- kombu wiring -------------------------------------------------------

    def get_consumers(self, Consumer, channel):  # noqa: N803 - kombu's signature
        consumers = []
        for sub in self.subscriptions.queues.values():
            if self.only is not None and sub.queue not in self.only:
                continue
            queue = self.bus.declare_consumer_queue(channel, sub.queue, sub.bindings)
            consumers.append(Consumer(
                queues=[queue], on_message=lambda m, s=sub: self.receive(s, m),
                prefetch_count=self.prefetch, accept=[CONTENT_TYPE, "application/json"],
            ))
        return consumers

    @contextmanager
    def establish_connection(self):
        # kombu's default waits 2, 4, 6 … up to 30 s between attempts; after a broker
        # restart that delay adds up hop by hop along a chain of services. Retry
        # every 0.5–3 s instead: connecting is cheap, waiting is what residents feel.
        with self.create_connection() as conn:
            conn.ensure_connection(self.on_connection_error, self.connect_max_retries,
                                   interval_start=0.5, interval_step=0.5, interval_max=3)
            yield conn

    def on_connection_revived(self):
        # A new connection, before its consumers start: messages taken on the channel that
        # is gone are redelivered by the broker. (Not later: a queue's first deliveries can
        # arrive while the next queue's consumer is still being set up.)
        self._taken = []

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        self._consuming = connection
        self.ready.set()

    def consume(self, *args, **kwargs):
        """kombu's loop, settling after each wake-up everything already waiting, as one batch."""
        for _ in super().consume(*args, **kwargs):
            self._take_waiting()
            self._settle_taken()
            yield

    def on_consume_end(self, connection, channel):
        # Stopping (or reconnecting): the consumers are cancelled, the channel is still
        # open. What was received and not settled yet is handled and acked now rather
        # than left to be redelivered; then the retry connection closes.
        if self.should_stop:
            self._settle_taken()
        super().on_consume_end(connection, channel)

    def on_iteration(self):
        # Before each wait for the next message: deliveries that arrived outside a wait
        # (while the consumers were being set up) are settled first, or with the
        # prefetch full of them nothing more would ever arrive.
        self._settle_taken()

    def _settle_taken(self) -> None:
        taken, self._taken = self._taken, []
        if taken:
            self.settle(taken)

    def _take_waiting(self) -> None:
        # A short timeout, not 0: py-amqp keeps a half-read frame only on a real timeout.
        for _ in range(4 * self.batch_size):
            if len(self._taken) >= self.batch_size or self._consuming is None:
                return
            try:
                self._consuming.drain_events(timeout=0.001)
            except TimeoutError:
                return

    def on_connection_error(self, exc, interval):
        self.ready.clear()
        log.warning("bus connection lost, retrying in %ss", interval, extra={"error": str(exc)})

    def stop(self) -> None:
        self.should_stop = True

    # -- handling -----------------------------------------------------------

    def receive(self, sub: Subscription, message) -> None:
        self._taken.append(Incoming(sub, message.body, message.headers or {},
                                    message.properties.get("message_id") or "", message))

    def settle(self, batch: list[Incoming]) -> list[str]:
        """Handle a batch, then ack (or requeue) each message: only after the commit,
        or after a confirmed retry or dead letter."""
        outcomes = self.handle_batch(batch)
        for item, outcome in zip(batch, outcomes, strict=True):
            if item.message is not None:
                if outcome == Outcome.REQUEUED:
                    item.message.requeue()
                else:
                    item.message.ack()
            CONSUMED.labels(item.sub.queue, outcome).inc()
            if self.on_outcome:
                self.on_outcome(item.sub.queue, item.message_id, outcome)
            if log.isEnabledFor(logging.DEBUG):
                with tracing.within(item.span):
                    log.debug("event handled", extra={**_about(item), "queue": item.sub.queue,
                                                      "outcome": outcome})
        return outcomes

    def handle(self, sub: Subscription, body: bytes | str, headers: dict, delivery_info: dict,
               *, message_id: str = "") -> str:
        """One message on its own (its outcome; the caller acks)."""
        return self.handle_batch([Incoming(sub, body, headers, message_id)])[0]

    def handle_batch(self, batch: list[Incoming]) -> list[str]:
        outcomes: list[str | None] = [None] * len(batch)
        ready: list[tuple[int, Event, Handler]] = []
        for i, item in enumerate(batch):
            parsed = self._parse(item)
            if isinstance(parsed, str):
                outcomes[i] = parsed
            else:
                ready.append((i, *parsed))
        for i, event, _ in ready:
            batch[i].event = event
        if len(ready) == 1:
            i, event, handler = ready[0]
            outcomes[i] = self._run_one(batch[i], event, handler)
        elif ready:
            BATCH_SIZE.observe(len(ready))
            together = self._run_together(batch, ready)
            for k, (i, event, handler) in enumerate(ready):
                # Rolled back as a batch (None): each again on its own, in order.
                outcomes[i] = together[k] if together else self._run_one(batch[i], event, handler)
        return [o or Outcome.PROCESSED for o in outcomes]

    def _parse(self, item: Incoming) -> tuple[Event, Handler] | str:
        """The checked event and its handler, or the outcome of dead-lettering it."""
        attempts = _attempts(item.headers) + 1
        envelope = None
        try:
            envelope = Envelope.parse(item.body)
            entry = item.sub.handlers.get(envelope.type)
            if entry is None:
                lookup(envelope.type)  # raises for an undeclared type
                raise InvalidEvent(f"{item.sub.queue} has no handler for {envelope.type}")
            event_type, handler = entry
            return Event(envelope.id, envelope.type, envelope.source, envelope.time,
                         envelope.subject, event_type.load(envelope.data),
                         envelope.traceparent, envelope.tracestate), handler
        except InvalidEvent as exc:
            reason = f"invalid event: {exc}"
        except Exception as exc:  # noqa: BLE001 - unreadable in a way we did not foresee
            reason = f"unreadable event: {exc!r}"
        if envelope is not None:  # its id, type and trace are known: the log line names them
            item.event = Event(envelope.id, envelope.type, envelope.source, envelope.time, envelope.subject,
                               envelope.data, envelope.traceparent, envelope.tracestate)
        self.dead_letter(item.sub.queue, item.body, item.headers, attempts, reason, message_id=item.message_id,
                         about=_about(item))
        return Outcome.DEAD_LETTERED

    def _run_one(self, item: Incoming, event: Event, handler: Handler) -> str:
        # In the event's own trace: the handler's logs, the events it records and a
        # retry's or dead letter's log line carry it.
        with tracing.consuming(item.sub.queue, event.id, event.traceparent, event.tracestate) as span:
            item.span = span
            return self._run_one_traced(item, event, handler)

    def _run_one_traced(self, item: Incoming, event: Event, handler: Handler) -> str:
        queue = item.sub.queue
        started = time.perf_counter()
        try:
            with self.db.transaction() as session:
                if self.inbox.seen(session, [(queue, event.id)]):
                    return Outcome.DUPLICATE
                handler(session, event)
                self.inbox.remember(session, [(queue, event.id, event.type)])
            return Outcome.PROCESSED
        except IntegrityError as exc:
            if self._already_processed(queue, event.id):
                return Outcome.DUPLICATE  # a concurrent redelivery won the race
            return self._failed(item, exc)
        except Exception as exc:  # noqa: BLE001 - any handler bug counts as an attempt
            if unavailable(exc):
                return self._database_down(queue, exc)
            return self._failed(item, exc)
        finally:
            HANDLER_SECONDS.labels(queue).observe(time.perf_counter() - started)

    def _run_together(self, batch: list[Incoming], ready: list[tuple[int, Event, Handler]]) -> list[str] | None:
        """All of ``ready`` in one transaction: their outcomes, or None if it was rolled back."""
        outcomes: list[str] = []
        try:
            with self.db.transaction() as session:
                seen = self.inbox.seen(session, [(batch[i].sub.queue, event.id) for i, event, _ in ready])
                done: list[tuple[str, str, str]] = []
                for i, event, handler in ready:
                    key = (batch[i].sub.queue, event.id)
                    if key in seen:
                        outcomes.append(Outcome.DUPLICATE)
                        continue
                    started = time.perf_counter()
                    with tracing.consuming(key[0], event.id, event.traceparent, event.tracestate) as span:
                        batch[i].span = span
                        handler(session, event)
                    HANDLER_SECONDS.labels(key[0]).observe(time.perf_counter() - started)
                    seen.add(key)
                    done.append((*key, event.type))
                    outcomes.append(Outcome.PROCESSED)
                self.inbox.remember(session, done)
            return outcomes
        except Exception as exc:  # noqa: BLE001 - someone in the batch failed: each on its own now
            if unavailable(exc):
                return [self._database_down(batch[0].sub.queue, exc)] * len(ready)
            log.info("batch of %d rolled back; handling its messages one by one", len(ready))
            return None

    @staticmethod
    def _database_down(queue: str, exc: Exception) -> str:
        # The database is down, not the message: back off and try again, no attempt counted.
        log.warning("database unavailable in %s: %s", queue, getattr(exc, "orig", None) or exc)
        time.sleep(1.0)
        return Outcome.REQUEUED

    def _already_processed(self, queue: str, event_id: str) -> bool:
        with self.db.transaction() as session:
            return bool(self.inbox.seen(session, [(queue, event_id)]))

    def _failed(self, item: Incoming, exc: Exception) -> str:
        queue, attempts = item.sub.queue, _attempts(item.headers) + 1
        reason = "".join(traceback.format_exception_only(exc)).strip()[:1000]
        if attempts >= self.max_attempts:
            self.dead_letter(queue, item.body, item.headers, attempts, f"handler failed {attempts} times: {reason}",
                             message_id=item.message_id, about=_about(item))
            return Outcome.DEAD_LETTERED
        log.warning("handler failed in %s (attempt %d): %s", queue, attempts, reason,
                    extra={**_about(item), "queue": queue, "attempt": attempts})
        time.sleep(min(0.05 * 2 ** attempts, 2.0))
        self._publish(item.body, item.headers | {ATTEMPTS_HEADER: attempts, REASON_HEADER: reason},
                      exchange="", routing_key=queue, message_id=item.message_id)
        return Outcome.RETRIED

    def dead_letter(self, queue: str, body, headers: dict, attempts: int, reason: str,
                    *, message_id: str = "", about: dict | None = None) -> None:
        log.error("dead-lettered from %s: %s", queue, reason,
                  extra={"event_id": message_id, **(about or {}), "queue": queue, "attempts": attempts})
        self._publish(body, headers | {
            ATTEMPTS_HEADER: attempts, REASON_HEADER: reason[:2000], "x-gridgov-queue": queue,
            "x-gridgov-dead-at": datetime.now(UTC).isoformat(),
        }, exchange=DEAD_LETTER_EXCHANGE, routing_key=queue, message_id=message_id)

    def _publish(self, body, headers: dict, *, exchange: str, routing_key: str,
                 message_id: str = "") -> None:
        # Confirmed (confirm_publish) before we ack the original: never lost.
        properties = {"message_id": message_id} if message_id else {}
        try:
            self.producer.publish(body, exchange=exchange, routing_key=routing_key, headers=headers,
                                  content_type=CONTENT_TYPE, content_encoding="utf-8", delivery_mode=2,
                                  retry=True, retry_policy={"max_retries": 5, "interval_start": 0.2},
                                  timeout=max(self.bus.timeout, 5.0), **properties)
        except Exception:
            # Nacked, or unreachable beyond the retries: the original stays unacked (it comes
            # back), and the next publish starts on a fresh connection, since a channel that
            # saw a quorum queue's leader die may keep nacking that queue.
            self._drop_producer_connection()
            raise

    def _drop_producer_connection(self) -> None:
        conn, self._producer_connection = self._producer_connection, None
        if conn is not None:
            try:
                conn.release()
            except Exception:  # noqa: BLE001 - already broken
                pass

    # -- running ------------------------------------------------------------

    def run_until_stopped(self) -> None:
        """``run`` that survives anything but a stop (a bug must not silence a queue)."""
        while not self.should_stop:
            try:
                self.run()
            except Exception:  # noqa: BLE001
                log.exception("worker crashed; restarting")
                self.ready.clear()
                time.sleep(1.0)

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_until_stopped, name=f"worker-{self.subscriptions.consumer}", daemon=True)
        thread.start()
        return thread


def _about(item: Incoming) -> dict[str, str]:
    """What a log line says about the message: its event id and type, and, outside the
    span it was handled in, the trace it carried."""
    event = item.event
    if event is None:
        return {"event_id": item.message_id} if item.message_id else {}
    about = {"event_id": event.id, "event_type": event.type}
    if item.span is None:
        about |= tracing.ids(event.traceparent)
    return about


def _attempts(headers: dict) -> int:
    try:
        return max(int(headers.get(ATTEMPTS_HEADER, 0)), 0)
    except (TypeError, ValueError):
        return 0
