"""The delivery loop: sends pending deliveries over email and SMS.

Each delivery is scheduled on its own (``next_attempt_at``), so a failing
channel or address never holds up another:

1. *Claim* due rows in a short transaction (``FOR UPDATE SKIP LOCKED`` on
   PostgreSQL, so several loops never take the same row), count the attempt
   and push ``next_attempt_at`` out by a lease: if this process dies mid-send
   the row comes due again by itself.
2. *Send* outside any transaction, a few at a time in threads, with timeouts.
3. *Record* each outcome in its own transaction: ``sent``; or back off
   exponentially; or, after ``max_attempts`` (or a permanent refusal),
   ``dead`` with ``notify.delivery.failed`` written to the outbox in the same
   transaction.

One-time codes (``code_texts``, written by :func:`notify.handlers.text_code`) go
the same way in the same loop, with two differences: a code's text is retried
only until the code expires, and it leaves nothing behind: the row is deleted
once sent, refused for good, out of attempts or expired (counted in
``gridgov_notify_code_texts_total``).
"""

from __future__ import annotations

import logging
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter
from sqlalchemy import delete, select, update

from gridkit import tracing
from gridkit.crypto import DataKey

from .channels import ChannelError, EmailSender, HttpSmsGateway, SmsGateway
from .config import NotifyConfig
from .events import DELIVERY_FAILED
from .rules import OUTSIDE_CHANNELS
from .tables import CodeText, Contact, Delivery, Notice, outbox, utcnow

log = logging.getLogger(__name__)

DELIVERIES = Counter("gridgov_notify_deliveries_total", "Delivery attempts by channel and outcome",
                     ["channel", "outcome"])
CODE_TEXTS = Counter("gridgov_notify_code_texts_total", "One-time code texts by outcome",
                     ["outcome"])  # sent | retry | dead | expired
# Every series from the start at zero: the failing-deliveries alert compares rates, and
# increase() misses the first count of a series that appears with it.
for _channel in OUTSIDE_CHANNELS:
    for _outcome in ("sent", "retry", "dead"):
        DELIVERIES.labels(_channel, _outcome)
for _outcome in ("sent", "retry", "dead", "expired"):
    CODE_TEXTS.labels(_outcome)
LEASE = timedelta(minutes=2)
MAX_BACKOFF = 3600.0


@dataclass(frozen=True)
class Claimed:
    id: int
    attempts: int
    channel: str
    recipient_id: str
    kind: str
    title: str
    body: str
    address: str | None  # opened contact; None when the person removed it meanwhile


@dataclass(frozen=True)
class ClaimedCode:
    id: int
    attempts: int
    phone: str
    text: str


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def backoff(config: NotifyConfig, attempts: int) -> timedelta:
    """Wait before the next attempt: retry_seconds doubling per attempt, ±10 % jitter, ≤ 1 h."""
    seconds = min(config.retry_seconds * 2 ** (attempts - 1), MAX_BACKOFF)
    return timedelta(seconds=seconds * random.uniform(0.9, 1.1))


class Deliverer:
    def __init__(self, runtime, *, email: EmailSender | None = None, sms: SmsGateway | None = None,
                 batch_size: int = 100, senders: int = 8):
        self.runtime = runtime
        self.db = runtime.db
        self.config: NotifyConfig = runtime.extras["notify_config"]
        self.sealer: DataKey = runtime.extras["sealer"]
        self.email = email or EmailSender(self.config)
        self.sms = sms or HttpSmsGateway(self.config)
        self.batch_size = batch_size
        self.pool = ThreadPoolExecutor(max_workers=senders, thread_name_prefix="notify-send")

    def run_once(self) -> int:
        """Send every delivery due now (one batch); return how many were attempted."""
        claimed = self.claim()
        codes = self.claim_codes()
        list(self.pool.map(self.send_code, codes))  # first: their codes are short-lived
        list(self.pool.map(self.deliver, claimed))
        return len(claimed) + len(codes)

    def claim(self) -> list[Claimed]:
        now = utcnow()
        with self.db.transaction() as session:
            query = (select(Delivery).where(Delivery.status == "pending", Delivery.next_attempt_at <= now)
                     .order_by(Delivery.next_attempt_at, Delivery.id).limit(self.batch_size))
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            rows = session.scalars(query).all()
            if not rows:
                return []
            notices = {n.id: n for n in session.scalars(
                select(Notice).where(Notice.id.in_({r.notice_id for r in rows})))}
            contacts = {c.user_id: c for c in session.scalars(
                select(Contact).where(Contact.user_id.in_({r.recipient_id for r in rows})))}
            claimed = []
            for row in rows:
                row.attempts += 1
                row.next_attempt_at = now + LEASE
                notice = notices[row.notice_id]
                claimed.append(Claimed(row.id, row.attempts, row.channel, row.recipient_id, row.kind,
                                       notice.title, notice.body,
                                       self._address(contacts.get(row.recipient_id), row.channel)))
            return claimed

    def _address(self, contact: Contact | None, channel: str) -> str | None:
        sealed = contact and (contact.email_sealed if channel == "email" else contact.phone_sealed)
        return self.sealer.open(sealed, f"contact.{channel}") if sealed else None

    def deliver(self, item: Claimed) -> None:
        try:
            if item.address is None:
                raise ChannelError(f"no {item.channel} contact registered", permanent=True)
            reference = f"delivery-{item.id}"
            if item.channel == "email":
                ref = self.email.send(item.address, item.title, item.body, reference=reference)
            else:
                ref = self.sms.send(item.address, f"{item.title}：{item.body}", reference=reference)
        except ChannelError as exc:
            self.failed(item, str(exc), permanent=exc.permanent)
        except Exception as exc:  # noqa: BLE001 - a bug in one send must not stop the loop
            log.exception("delivery %s crashed", item.id)
            self.failed(item, f"unexpected error: {exc!r}", permanent=False)
        else:
            self.sent(item, ref)

    def sent(self, item: Claimed, provider_ref: str | None) -> None:
        with self.db.transaction() as session:
            session.execute(update(Delivery).where(*self._still_ours(item)).values(
                status="sent", sent_at=utcnow(), last_error=None, provider_ref=(provider_ref or "")[:200] or None))
        DELIVERIES.labels(item.channel, "sent").inc()

    def failed(self, item: Claimed, reason: str, *, permanent: bool) -> None:
        now = utcnow()
        dead = permanent or item.attempts >= self.config.max_attempts
        with self.db.transaction() as session:
            if dead:
                done = session.execute(update(Delivery).where(*self._still_ours(item)).values(
                    status="dead", last_error=reason[:2000]))
                if done.rowcount:
                    outbox.record(session, DELIVERY_FAILED, {
                        "delivery_id": str(item.id), "recipient_id": item.recipient_id,
                        "channel": item.channel, "template": item.kind, "attempts": item.attempts,
                        "reason": reason[:1000], "at": now}, subject=str(item.id))
            else:
                session.execute(update(Delivery).where(*self._still_ours(item)).values(
                    last_error=reason[:2000], next_attempt_at=now + backoff(self.config, item.attempts)))
        DELIVERIES.labels(item.channel, "dead" if dead else "retry").inc()
        log.warning("delivery %s over %s failed (attempt %d%s): %s", item.id, item.channel,
                    item.attempts, ", dead" if dead else "", reason)

    @staticmethod
    def _still_ours(item: Claimed):
        # Another loop may have re-claimed the row after our lease ran out: then it owns the outcome.
        return (Delivery.id == item.id, Delivery.attempts == item.attempts, Delivery.status == "pending")

    # -- one-time codes ---------------------------------------------------------

    def claim_codes(self) -> list[ClaimedCode]:
        now = utcnow()
        with self.db.transaction() as session:
            query = (select(CodeText).where(CodeText.next_attempt_at <= now)
                     .order_by(CodeText.next_attempt_at, CodeText.id).limit(self.batch_size))
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            claimed = []
            for row in session.scalars(query).all():
                if aware(row.expires_at) <= now:
                    session.delete(row)
                    CODE_TEXTS.labels("expired").inc()
                    log.warning("one-time code text %s expired unsent: %s", row.id, row.last_error or "not tried")
                    continue
                row.attempts += 1
                row.next_attempt_at = now + LEASE
                claimed.append(ClaimedCode(row.id, row.attempts, self.sealer.open(row.recipient_sealed, "code.sms"),
                                           self.sealer.open(row.text_sealed, "code.text")))
            return claimed

    def send_code(self, item: ClaimedCode) -> None:
        try:
            self.sms.send(item.phone, item.text, reference=f"code-{item.id}")
        except ChannelError as exc:
            self.code_failed(item, str(exc), permanent=exc.permanent)
        except Exception as exc:  # noqa: BLE001 - a bug in one send must not stop the loop
            log.exception("code text %s crashed", item.id)
            self.code_failed(item, f"unexpected error: {exc!r}", permanent=False)
        else:
            with self.db.transaction() as session:
                session.execute(delete(CodeText).where(CodeText.id == item.id, CodeText.attempts == item.attempts))
            CODE_TEXTS.labels("sent").inc()

    def code_failed(self, item: ClaimedCode, reason: str, *, permanent: bool) -> None:
        dead = permanent or item.attempts >= self.config.max_attempts
        ours = (CodeText.id == item.id, CodeText.attempts == item.attempts)
        with self.db.transaction() as session:
            if dead:
                session.execute(delete(CodeText).where(*ours))
            else:
                session.execute(update(CodeText).where(*ours).values(
                    last_error=reason[:2000], next_attempt_at=utcnow() + backoff(self.config, item.attempts)))
        CODE_TEXTS.labels("dead" if dead else "retry").inc()
        log.warning("one-time code text %s failed (attempt %d%s): %s", item.id, item.attempts,
                    ", dropped" if dead else "", reason)

    def close(self) -> None:
        self.pool.shutdown(wait=False)


def delivery_loop(runtime, stop: threading.Event) -> None:
    """Background loop (``ServiceSpec.background``): woken when notices commit, else polls."""
    deliverer = Deliverer(runtime)
    runtime.extras["deliverer"] = deliverer
    due: threading.Event = runtime.extras["deliveries_due"]
    poll = max(runtime.extras["notify_config"].poll_seconds, 0.5)
    try:
        while not stop.is_set():
            due.clear()
            try:
                with tracing.background("notify deliveries"):
                    busy = deliverer.run_once() >= deliverer.batch_size
            except Exception:  # noqa: BLE001 - database down: keep the loop alive
                log.exception("delivery batch failed")
                busy = False
                stop.wait(2.0)
            if not busy:
                due.wait(poll)
    finally:
        deliverer.close()
