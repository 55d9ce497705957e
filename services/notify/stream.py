"""Live push of notices over Server-Sent Events.

One :class:`Broadcaster` per process. Open streams register their user and
sleep on it; it wakes a user's streams when a new notice for them exists:

* at once when the notice commits in this process (a session hook pokes it);
* otherwise within ``poll_seconds``: one small query per process (not per
  stream) for notices created in the last few seconds, so a notice written
  by the worker process, or by another gunicorn worker, reaches every stream.
  The poll only runs while streams are open.

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
                    self._poller = None
                    return
            self._poke.wait(self.poll_seconds)
            self._poke.clear()
            try:
                self._scan()
            except Exception:  # noqa: BLE001 - database blip: streams fall back to heartbeats
                time.sleep(1.0)

    def _scan(self) -> None:
        with self.db.sessions() as session:
            rows = session.execute(select(Notice.id, Notice.recipient_id)
                                   .where(Notice.created_at > utcnow() - LOOKBACK)).all()
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
        def recent(session, after: int) -> list[Notice]:
            return session.scalars(select(Notice).where(
                Notice.recipient_id == user,
                or_(Notice.id > after, Notice.created_at > utcnow() - LOOKBACK),
            ).order_by(Notice.id).limit(200)).all()

        with db.sessions() as session:
            if last_event_id is None:  # a fresh client starts from now
                last_event_id = session.scalar(select(Notice.id).where(Notice.recipient_id == user)
                                               .order_by(Notice.id.desc()).limit(1)) or 0
            # What the client already has (up to last_event_id) and is still in the window.
            started = time.monotonic()
            sent = {n.id: started for n in recent(session, last_event_id) if n.id <= last_event_id}
        yield "retry: 3000\n: connected\n\n"
        ends = time.monotonic() + lifetime
        while True:
            with db.sessions() as session:
                notices = recent(session, last_event_id)
            now = time.monotonic()
            for notice in notices:
                if notice.id in sent:
                    continue
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
