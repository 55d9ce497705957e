"""Live push of notices over Server-Sent Events.

One :class:`Broadcaster` per process. Each open stream subscribes for its
user and sleeps; the broadcaster hands it new notices:

* On PostgreSQL the transaction that writes notices (in the worker) sends
  them, as JSON, in ``NOTIFY gridgov_notices`` payloads at commit (see
  :func:`notify_payloads`). Each web process's broadcaster LISTENs and gives
  every subscribed stream of a recipient its notices straight away: no query
  per notice, per stream or per process. A notice too large for a payload
  travels as its id, and its stream reads it from the database.
* Otherwise (SQLite: one process; a commit in this process; a listener that
  failed and is reconnecting) a scan of the last seconds' notices marks the
  recipients' streams to read their inbox; it runs on a local commit, every
  ``poll_seconds`` when not listening, and every ``SAFETY_SCAN`` seconds as a
  backstop even when listening.

A stream that reads its inbox re-reads a short look-back window and skips ids
it has already sent (ids from a sequence can commit out of order), instead of
trusting ``id > last`` alone; payload notices go through the same check.

gunicorn: an open stream holds one gthread thread for its whole life
(``GRIDGOV_NOTIFY_STREAM_SECONDS``, then the client reconnects with
``Last-Event-ID`` and misses nothing). Size ``GRIDGOV_WEB_THREADS`` for the
streams you expect per worker plus the ordinary requests (e.g. 64–200 for
notify), or run the stream route in its own deployment. gthread's
``timeout`` does not cut long responses (the worker keeps heartbeating);
proxies must not buffer ``text/event-stream`` (we send ``X-Accel-Buffering: no``).
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta

from sqlalchemy import or_, select

from .tables import Notice, utcnow

LOOKBACK = timedelta(seconds=10)
RECENT = timedelta(seconds=2)  # what a scan after a local commit reads; the full LOOKBACK otherwise
SAFETY_SCAN = 5.0  # seconds between backstop scans while LISTEN works
NOTICES_CHANNEL = "gridgov_notices"
PAYLOAD_BYTES = 7000  # PostgreSQL refuses NOTIFY payloads of 8000 bytes or more


def notify_payloads(notices: list[dict]) -> list[str]:
    """JSON payloads for ``pg_notify``, each under the size limit; a notice that
    alone is too large goes as ``{"id", "recipient_id"}`` and is read from the table."""
    payloads, chunk, size = [], [], 2
    for notice in notices:
        text = json.dumps(notice, ensure_ascii=False, separators=(",", ":"))
        if len(text.encode()) > PAYLOAD_BYTES - 2:
            text = json.dumps({"id": notice["id"], "recipient_id": notice["recipient_id"]})
        length = len(text.encode()) + 1
        if chunk and size + length > PAYLOAD_BYTES:
            payloads.append("[" + ",".join(chunk) + "]")
            chunk, size = [], 2
        chunk.append(text)
        size += length
    if chunk:
        payloads.append("[" + ",".join(chunk) + "]")
    return payloads


class Subscription:
    """One open stream's mailbox."""

    def __init__(self, user: str):
        self.user = user
        self.notices: list[dict] = []  # arrived in payloads, not yet sent
        self.read_inbox = False  # something arrived that only the table has
        self.woken = threading.Event()


class Broadcaster:
    def __init__(self, db, poll_seconds: float = 0.3):
        self.db = db
        self.poll_seconds = poll_seconds
        self._lock = threading.Lock()
        self._subscribers: dict[str, list[Subscription]] = defaultdict(list)
        self._seen: dict[int, float] = {}  # notice ids announced already (by payload or scan)
        self._poke = threading.Event()
        self._poller: threading.Thread | None = None
        self._listener = None  # psycopg connection LISTENing on NOTICES_CHANNEL (PostgreSQL)
        self._last_full_scan = 0.0

    # -- streams ------------------------------------------------------------

    def subscribe(self, user: str) -> Subscription:
        subscription = Subscription(user)
        with self._lock:
            self._subscribers[user].append(subscription)
            if self._poller is None or not self._poller.is_alive():
                self._poller = threading.Thread(target=self._poll, name="notify-sse-poll", daemon=True)
                self._poller.start()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            streams = self._subscribers.get(subscription.user, [])
            if subscription in streams:
                streams.remove(subscription)
            if not streams:
                self._subscribers.pop(subscription.user, None)

    def take(self, subscription: Subscription, timeout: float) -> tuple[list[dict], bool] | None:
        """Sleep until the stream has something (or ``timeout``: None); then its payload
        notices and whether it must read its inbox."""
        if not subscription.woken.wait(timeout):
            return None
        with self._lock:
            subscription.woken.clear()
            notices, subscription.notices = subscription.notices, []
            read_inbox, subscription.read_inbox = subscription.read_inbox, False
        return notices, read_inbox

    def announce(self, users) -> None:
        """These users' streams should read their inbox."""
        with self._lock:
            for user in users:
                for subscription in self._subscribers.get(user, ()):
                    subscription.read_inbox = True
                    subscription.woken.set()

    def deliver(self, notices: list[dict]) -> None:
        """Notices that arrived whole (or as bare ids) in a payload."""
        now = time.monotonic()
        with self._lock:
            for notice in notices:
                self._seen[notice["id"]] = now
                for subscription in self._subscribers.get(notice["recipient_id"], ()):
                    if "kind" in notice:
                        subscription.notices.append(notice)
                    else:
                        subscription.read_inbox = True
                    subscription.woken.set()

    def poke(self) -> None:
        """A notice committed in this process: scan now instead of at the next tick."""
        self._poke.set()

    # -- the one poller per process -------------------------------------------

    def _poll(self) -> None:
        while True:
            with self._lock:
                if not self._subscribers:
                    self._close_listener()  # under the lock: a new poller opens its own
                    self._poller = None
                    return
            listening = self._listen_for_payloads()
            poked = self._poke.is_set()
            self._poke.clear()
            interval = SAFETY_SCAN if listening else self.poll_seconds
            full = time.monotonic() - self._last_full_scan >= interval
            if not (poked or full):
                continue
            try:
                self._scan(LOOKBACK if full else RECENT)
                if full:
                    self._last_full_scan = time.monotonic()
            except Exception:  # noqa: BLE001 - database blip: streams fall back to heartbeats
                time.sleep(1.0)

    def _listen_for_payloads(self) -> bool:
        """Deliver what arrives over LISTEN for up to ``poll_seconds`` (returning early on a
        poke); False when not listening (SQLite, or the connection failed)."""
        if getattr(self.db, "is_sqlite", True):
            self._poke.wait(self.poll_seconds)
            return False
        deadline = time.monotonic() + self.poll_seconds
        try:
            fresh = self._listener is None or self._listener.closed
            listener = self._listen()
            if fresh:
                self._last_full_scan = 0.0  # (re)connected: what committed meanwhile comes from a scan
                return True
            while not self._poke.is_set() and (remaining := deadline - time.monotonic()) > 0:
                # Short slices so a poke from this process is noticed promptly too.
                for note in listener.notifies(timeout=min(remaining, 0.05), stop_after=1):
                    self._arrived(note.payload)
            return True
        except Exception:  # noqa: BLE001 - fall back to polling
            self._close_listener()
            self._poke.wait(max(deadline - time.monotonic(), 0))
            return False

    def _arrived(self, payload: str) -> None:
        try:
            notices = json.loads(payload) if payload else None
        except ValueError:
            notices = None
        if isinstance(notices, list) and all(isinstance(n, dict) and "id" in n and "recipient_id" in n
                                             for n in notices):
            self.deliver(notices)
        else:
            self._poke.set()  # a bare NOTIFY (or one we cannot read): scan

    def _listen(self):
        if self._listener is None or self._listener.closed:
            import psycopg

            url = self.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            self._listener = psycopg.connect(url, autocommit=True, connect_timeout=5)
            self._listener.execute(f"LISTEN {NOTICES_CHANNEL}")
        return self._listener

    def _close_listener(self) -> None:
        if self._listener is not None:
            try:
                self._listener.close()
            except Exception:  # noqa: BLE001
                pass
        self._listener = None

    def _scan(self, window: timedelta = LOOKBACK) -> None:
        with self.db.sessions() as session:
            rows = session.execute(select(Notice.id, Notice.recipient_id)
                                   .where(Notice.created_at > utcnow() - window)).all()
        now = time.monotonic()
        with self._lock:
            fresh = [row for row in rows if row.id not in self._seen]
            for row in fresh:
                self._seen[row.id] = now
            for notice_id, at in list(self._seen.items()):
                if now - at > 2 * LOOKBACK.total_seconds():
                    del self._seen[notice_id]
        if fresh:
            self.announce({row.recipient_id for row in fresh})


def notice_json(notice: Notice) -> dict:
    """A notice as a stream sends it (and as a payload carries it, with its recipient)."""
    return {"id": notice.id, "recipient_id": notice.recipient_id, "kind": notice.kind,
            "critical": notice.critical, "title": notice.title, "body": notice.body,
            "case_id": notice.case_id, "petition_id": notice.petition_id,
            "created_at": notice.created_at.isoformat(), "read": notice.read_at is not None}


def notice_json_out(notice: dict) -> dict:
    return {k: v for k, v in notice.items() if k != "recipient_id"}


def sse(event: str, data: dict, event_id: int | None = None) -> str:
    lines = [f"id: {event_id}"] if event_id is not None else []
    lines += [f"event: {event}", f"data: {json.dumps(data, ensure_ascii=False)}"]
    return "\n".join(lines) + "\n\n"


def stream_notices(db, broadcaster: Broadcaster, user: str, *, last_event_id: int | None,
                   lifetime: float, heartbeat: float) -> Iterator[str]:
    """The body of one SSE response: notices as they come, heartbeats between."""
    subscription = broadcaster.subscribe(user)
    try:
        def recent_ids(session, after: int) -> list[int]:
            return session.scalars(select(Notice.id).where(
                Notice.recipient_id == user,
                or_(Notice.id > after, Notice.created_at > utcnow() - LOOKBACK),
            ).order_by(Notice.id)).all()

        def from_inbox(after: int) -> list[dict]:
            # Ids first (cheap), whole rows only for what this stream has not sent: the
            # window is re-read on every such wake-up, and a busy user has hundreds in it.
            with db.sessions() as session:
                ids = [i for i in recent_ids(session, after) if i not in sent][:200]
                return [notice_json(n) for n in session.scalars(
                    select(Notice).where(Notice.id.in_(ids)).order_by(Notice.id))] if ids else []

        with db.sessions() as session:
            if last_event_id is None:  # a fresh client starts from now
                last_event_id = session.scalar(select(Notice.id).where(Notice.recipient_id == user)
                                               .order_by(Notice.id.desc()).limit(1)) or 0
            # What the client already has (up to last_event_id) and is still in the window.
            started = time.monotonic()
            sent = {i: started for i in recent_ids(session, last_event_id) if i <= last_event_id}
        yield "retry: 3000\n: connected\n\n"
        ends = time.monotonic() + lifetime
        notices = from_inbox(last_event_id)  # what it missed while away
        while True:
            now = time.monotonic()
            for notice in sorted(notices, key=lambda n: n["id"]):
                if notice["id"] in sent or notice.get("recipient_id", user) != user:
                    continue
                sent[notice["id"]] = now
                last_event_id = max(last_event_id, notice["id"])
                yield sse("notice", notice_json_out(notice), notice["id"])
            for notice_id, at in list(sent.items()):
                # Out of the look-back window by now: the query cannot return it again.
                if now - at > 2 * LOOKBACK.total_seconds() and notice_id <= last_event_id:
                    del sent[notice_id]
            remaining = ends - time.monotonic()
            if remaining <= 0:
                return
            woken = broadcaster.take(subscription, min(heartbeat, remaining))
            if woken is None:
                yield ": heartbeat\n\n"
                notices = []
                continue
            notices, read_inbox = woken
            if read_inbox:
                notices = notices + from_inbox(last_event_id)
    finally:
        broadcaster.unsubscribe(subscription)
