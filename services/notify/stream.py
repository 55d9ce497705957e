"""Live push of notices over Server-Sent Events.

One :class:`Broadcaster` per process. Open streams register their user and
sleep on it; it wakes a user's streams when a new notice for them exists:

* at once when the notice commits in this process (a session hook pokes it);
* when it commits in another process (the worker, another gunicorn worker):
  on PostgreSQL the commit sends ``NOTIFY gridgov_notices`` and the poller,
  which LISTENs, wakes at once; on SQLite (one process) or if the listening
  connection fails, within ``poll_seconds``.

Either way the wake-up runs one small query per process (not per stream) for
notices created in the last few seconds and wakes those users' streams. The
poller only runs while streams are open.

Each stream then reads its own user's new notices. Ids from a sequence can
commit out of order, so a stream re-reads a short look-back window and skips
ids it has already sent instead of trusting ``id > last`` alone.

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
RECENT = timedelta(seconds=2)  # what a wake-up by NOTIFY scans; the full LOOKBACK every poll_seconds
NOTICES_CHANNEL = "gridgov_notices"


class Broadcaster:
    def __init__(self, db, poll_seconds: float = 0.3):
        self.db = db
        self.poll_seconds = poll_seconds
        self._cond = threading.Condition()
        self._versions: dict[str, int] = defaultdict(int)  # user → bumps since start
        self._subscribers: dict[str, int] = defaultdict(int)
        self._seen: dict[int, float] = {}  # notice ids the poller has announced
        self._poke = threading.Event()
        self._poller: threading.Thread | None = None
        self._listener = None  # psycopg connection LISTENing on NOTICES_CHANNEL (PostgreSQL)
        self._last_full_scan = 0.0

    # -- streams ------------------------------------------------------------

    def subscribe(self, user: str) -> int:
        with self._cond:
            self._subscribers[user] += 1
            if self._poller is None or not self._poller.is_alive():
                self._poller = threading.Thread(target=self._poll, name="notify-sse-poll", daemon=True)
                self._poller.start()
            return self._versions[user]

    def unsubscribe(self, user: str) -> None:
        with self._cond:
            self._subscribers[user] -= 1
            if self._subscribers[user] <= 0:
                del self._subscribers[user]

    def wait(self, user: str, version: int, timeout: float) -> int:
        """Sleep until ``user`` may have new notices (or ``timeout``); return the new version."""
        with self._cond:
            self._cond.wait_for(lambda: self._versions[user] != version, timeout)
            return self._versions[user]

    def announce(self, users) -> None:
        with self._cond:
            for user in users:
                self._versions[user] += 1
            self._cond.notify_all()

    def poke(self) -> None:
        """A notice committed in this process: poll now instead of at the next tick."""
        self._poke.set()

    # -- the one poller per process -------------------------------------------

    def _poll(self) -> None:
        while True:
            with self._cond:
                if not self._subscribers:
                    self._close_listener()  # under the lock: a new poller opens its own
                    self._poller = None
                    return
            woken = self._wait_for_notices()
            self._poke.clear()
            # Woken by a commit: its notices are seconds old at most. The full look-back
            # (ids from a sequence may commit late) still runs every poll_seconds.
            full = not woken or time.monotonic() - self._last_full_scan >= self.poll_seconds
            try:
                self._scan(LOOKBACK if full else RECENT)
                if full:
                    self._last_full_scan = time.monotonic()
            except Exception:  # noqa: BLE001 - database blip: streams fall back to heartbeats
                time.sleep(1.0)

    def _wait_for_notices(self) -> bool:
        """Until a notice may have committed anywhere (NOTIFY) or here (poke): True; or
        ``poll_seconds`` passed: False."""
        if getattr(self.db, "is_sqlite", True):
            return self._poke.wait(self.poll_seconds)
        deadline = time.monotonic() + self.poll_seconds
        try:
            listener = self._listen()
            # Short slices so a poke from this process is noticed promptly too.
            while not self._poke.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                # stop_after=1 still takes every notification already received: bursts coalesce.
                if any(True for _ in listener.notifies(timeout=min(remaining, 0.05), stop_after=1)):
                    return True
            return True
        except Exception:  # noqa: BLE001 - fall back to polling
            self._close_listener()
            return self._poke.wait(max(deadline - time.monotonic(), 0))

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
        fresh = [row for row in rows if row.id not in self._seen]
        for row in fresh:
            self._seen[row.id] = now
        for notice_id, at in list(self._seen.items()):
            if now - at > 2 * LOOKBACK.total_seconds():
                del self._seen[notice_id]
        if fresh:
            self.announce({row.recipient_id for row in fresh})


def notice_json(notice: Notice) -> dict:
    return {"id": notice.id, "kind": notice.kind, "critical": notice.critical, "title": notice.title,
            "body": notice.body, "case_id": notice.case_id, "petition_id": notice.petition_id,
            "created_at": notice.created_at.isoformat(), "read": notice.read_at is not None}


def sse(event: str, data: dict, event_id: int | None = None) -> str:
    lines = [f"id: {event_id}"] if event_id is not None else []
    lines += [f"event: {event}", f"data: {json.dumps(data, ensure_ascii=False)}"]
    return "\n".join(lines) + "\n\n"


def stream_notices(db, broadcaster: Broadcaster, user: str, *, last_event_id: int | None,
                   lifetime: float, heartbeat: float) -> Iterator[str]:
    """The body of one SSE response: notices as they come, heartbeats between."""
    version = broadcaster.subscribe(user)
    try:
        def recent_ids(session, after: int) -> list[int]:
            return session.scalars(select(Notice.id).where(
                Notice.recipient_id == user,
                or_(Notice.id > after, Notice.created_at > utcnow() - LOOKBACK),
            ).order_by(Notice.id)).all()

        def unsent(session, after: int) -> list[Notice]:
            # Ids first (cheap), whole rows only for what this stream has not sent: the
            # window is re-read on every wake-up, and a busy user has hundreds in it.
            ids = [i for i in recent_ids(session, after) if i not in sent][:200]
            return session.scalars(select(Notice).where(Notice.id.in_(ids)).order_by(Notice.id)).all() \
                if ids else []

        with db.sessions() as session:
            if last_event_id is None:  # a fresh client starts from now
                last_event_id = session.scalar(select(Notice.id).where(Notice.recipient_id == user)
                                               .order_by(Notice.id.desc()).limit(1)) or 0
            # What the client already has (up to last_event_id) and is still in the window.
            started = time.monotonic()
            sent = {i: started for i in recent_ids(session, last_event_id) if i <= last_event_id}
        yield "retry: 3000\n: connected\n\n"
        ends = time.monotonic() + lifetime
        while True:
            with db.sessions() as session:
                notices = unsent(session, last_event_id)
            now = time.monotonic()
            for notice in notices:
                sent[notice.id] = now
                last_event_id = max(last_event_id, notice.id)
                yield sse("notice", notice_json(notice), notice.id)
            for notice_id, at in list(sent.items()):
                # Out of the look-back window by now: the query cannot return it again.
                if now - at > 2 * LOOKBACK.total_seconds() and notice_id <= last_event_id:
                    del sent[notice_id]
            remaining = ends - time.monotonic()
            if remaining <= 0:
                return
            new_version = broadcaster.wait(user, version, min(heartbeat, remaining))
            if new_version == version:
                yield ": heartbeat\n\n"
            version = new_version
    finally:
        broadcaster.unsubscribe(user)
