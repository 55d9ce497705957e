"""How long intake keeps photos (``GRIDGOV_PHOTO_RETENTION_DAYS``, 365).

A photo on a petition is kept while the petition may still be handled, and for the
retention after it reached its end: closed (archived by dispatch after the rating or
its timeout), withdrawn, or merged into another. A rework reopens a closed petition
and the count starts again when it closes. A photo on no petition — staff's photos
from the site, which dispatch's case notes refer to by id, or an upload never used —
is kept for the retention after its upload. The worker deletes them (rows and bytes)
every hour; erasure deletes a person's uploads at once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, event, or_, select
from sqlalchemy.orm import Session

from gridkit.db import keep_tidy

from .photos import PhotoStore
from .tables import Petition, Photo, utcnow

ENDED = ("closed", "withdrawn", "merged")
DEFAULT_PHOTO_RETENTION_DAYS = 365.0
CHUNK = 500


def photo_retention_days(settings) -> float:
    return float(settings.extra.get("GRIDGOV_PHOTO_RETENTION_DAYS")
                 or os.environ.get("GRIDGOV_PHOTO_RETENTION_DAYS") or DEFAULT_PHOTO_RETENTION_DAYS)


def delete_photos(session: Session, store: PhotoStore, photos: Iterable[tuple[str, str]]) -> int:
    """Delete these ``(id, sha256)`` photos in ``session``'s transaction; their bytes go once
    it commits, unless another photo row still has the same bytes."""
    photos = list(photos)
    if not photos:
        return 0
    session.execute(delete(Photo).where(Photo.id.in_([photo_id for photo_id, _ in photos])))
    addresses = {address for _, address in photos}
    addresses -= set(session.scalars(select(Photo.sha256).where(Photo.sha256.in_(addresses))))

    def unlink(_session) -> None:
        for address in addresses:
            store.delete(address)

    if addresses:
        event.listen(session, "after_commit", unlink, once=True)
    return len(photos)


def purge(runtime, now: datetime | None = None) -> int:
    """Delete the photos past their retention, ``CHUNK`` per transaction; returns how many."""
    cutoff = (now or utcnow()) - timedelta(days=runtime.extras["photo_retention_days"])
    store = runtime.extras["photos"]
    due = (select(Photo.id, Photo.sha256).outerjoin(Petition, Petition.id == Photo.petition_id)
           .where(or_(and_(Photo.petition_id.is_(None), Photo.uploaded_at < cutoff),
                      and_(Petition.status.in_(ENDED), Petition.updated_at < cutoff)))
           .limit(CHUNK))
    total = 0
    while True:
        with runtime.db.transaction() as session:
            done = delete_photos(session, store, session.execute(due).all())
        total += done
        if done < CHUNK:
            return total


def forget_expired_photos(runtime, stop: threading.Event) -> None:
    """The worker's loop (``ServiceSpec.background``): :func:`purge` at start and every
    ``runtime.extras["photo_purge_seconds"]`` (3600)."""
    keep_tidy(stop, runtime.extras.get("photo_purge_seconds", 3600.0), lambda: purge(runtime),
              "photos past their retention")
