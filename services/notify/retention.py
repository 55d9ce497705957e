"""How long notify keeps notices (``GRIDGOV_NOTICE_RETENTION_DAYS``, 180).

A notice is deleted, with its email and SMS deliveries, once it is older than the
retention, read or not: the inbox is a window on recent news, the cases themselves
stay in dispatch and intake. The worker deletes them every hour, oldest first, a
chunk per transaction.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from gridkit.db import keep_tidy

from .tables import Delivery, Notice, utcnow

DEFAULT_NOTICE_RETENTION_DAYS = 180.0
CHUNK = 2000


def notice_retention_days(settings) -> float:
    return float(settings.extra.get("GRIDGOV_NOTICE_RETENTION_DAYS")
                 or os.environ.get("GRIDGOV_NOTICE_RETENTION_DAYS") or DEFAULT_NOTICE_RETENTION_DAYS)


def purge(runtime, now: datetime | None = None) -> int:
    """Delete notices older than the retention and their deliveries; returns how many notices."""
    cutoff = (now or utcnow()) - timedelta(days=runtime.extras["notice_retention_days"])
    oldest = select(Notice.id).where(Notice.created_at < cutoff).order_by(Notice.created_at).limit(CHUNK)
    total = 0
    while True:
        with runtime.db.engine.begin() as conn:
            ids = list(conn.execute(oldest).scalars())
            if ids:
                conn.execute(delete(Delivery).where(Delivery.notice_id.in_(ids)))
                conn.execute(delete(Notice).where(Notice.id.in_(ids)))
        total += len(ids)
        if len(ids) < CHUNK:
            return total


def forget_old_notices(runtime, stop: threading.Event) -> None:
    """The worker's loop (``ServiceSpec.background``): :func:`purge` at start and every
    ``runtime.extras["notice_purge_seconds"]`` (3600)."""
    keep_tidy(stop, runtime.extras.get("notice_purge_seconds", 3600.0), lambda: purge(runtime),
              "notices past their retention")
