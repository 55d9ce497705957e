"""``Idempotency-Key`` on creating POSTs: a retried request gets the first answer again.

A service adds the table to its metadata, like the outbox, and puts the
decorator right under the route (outside the schema decorators, so it sees
the finished response)::

    idempotency = Idempotency(Base.metadata)          # tables.py

    @blp.post("/petitions")
    @idempotency.idempotent                           # api.py
    @require_roles(...)
    @blp.arguments(PetitionIn)
    @blp.response(201, PetitionOut)
    def submit(body): ...

Rules (after Stripe's and the IETF draft's):

* The key is scoped by (principal subject, key, route): two users, or one user
  on two routes, never collide. Without the header the request runs as usual.
* The key is 1–200 characters; anything else is a 422.
* A fingerprint (SHA-256 of method, path and the canonical JSON body of a JSON
  request — the raw bytes of any other, such as a photo, which are never read
  as JSON) is stored with the key. The same key
  with a different request is a 422 naming the header.
* Only successful answers (2xx) are stored and replayed (status, body,
  content type, Location), marked ``Idempotent-Replayed: true``. An error
  releases the key, so a client may fix the request and retry with the same
  key (e.g. submit again with ``"separate": true`` after a 409).
* Concurrent duplicates: the first request inserts the key row (committed,
  "in progress") before running the view; the unique key makes every other
  one wait for that row to finish (up to ``wait`` seconds) and then replay
  it, or answer 409 ``Retry-After`` if it is still running. Exactly one runs.
* A request that died between its business commit and storing the answer
  leaves an "in progress" row; after ``lease`` seconds a retry takes it over
  and runs again. That narrow window (a process crash in between) is the one
  case a retry can create twice; keep ``lease`` well above request times. When
  it is the database that goes away in between, the committed answer is still
  given (never a 503 for a change that was made), so the client has no reason to
  retry.
* Stored answers may hold personal data (a petition shows its reporter's
  phone to the reporter): when the service has a data key
  (``runtime.extras["data_key"]``, a :class:`gridkit.crypto.DataKey`) the body
  is sealed with it.
* Rows older than ``ttl`` are deleted by :meth:`Idempotency.purge`; a service using
  this lists ``idempotency.forget_expired`` in its spec's ``background`` loops.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from functools import wraps

from flask import Response, make_response, request
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from .auth import current_principal
from .db import keep_tidy, unavailable
from .inputs import request_json
from .problems import Invalid, Problem

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
SEAL_PURPOSE = "idempotency"
MAX_KEY = 200

# For OpenAPI: ``@blp.doc(parameters=[IDEMPOTENCY_PARAMETER])``.
IDEMPOTENCY_PARAMETER = {
    "in": "header", "name": HEADER, "required": False,
    "description": "Makes a retry safe: the same key and request replay the first answer.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY},
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Idempotency:
    def __init__(self, metadata: MetaData, *, wait: float = 10.0, lease: float = 60.0,
                 ttl: timedelta = timedelta(hours=24)):
        self.wait, self.lease, self.ttl = wait, lease, ttl
        self.table = Table(
            "idempotency_keys", metadata,
            Column("subject", String(200), primary_key=True),
            Column("key", String(MAX_KEY), primary_key=True),
            Column("route", String(300), primary_key=True),
            Column("fingerprint", String(64), nullable=False),
            Column("status", Integer),  # null while the first request is running
            Column("body", Text),
            Column("content_type", String(100)),
            Column("location", String(500)),
            Column("created_at", DateTime(timezone=True), nullable=False),
        )

    # -- the decorator -------------------------------------------------------

    def idempotent(self, view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            key = request.headers.get(HEADER)
            if key is None:
                return view(*args, **kwargs)
            if not 1 <= len(key) <= MAX_KEY:
                raise Invalid({HEADER: [f"must be 1–{MAX_KEY} characters"]})
            from .service import runtime

            db, sealer = runtime().db, runtime().extras.get("data_key")
            ident = (current_principal().subject, key, request.path[:300])
            replay = self._claim(db, ident, _fingerprint(), sealer)
            if replay is not None:
                return replay
            try:
                response = make_response(view(*args, **kwargs))
            except BaseException:
                self._release(db, ident)
                raise
            if 200 <= response.status_code < 300:
                try:
                    self._store(db, ident, response, sealer)
                except Exception as exc:
                    if not unavailable(exc):
                        raise
                    # The change is committed; only its replay record is not (the database went
                    # away in between). Give the answer: a client that has it does not retry.
                    log.warning("idempotent answer not stored: the database is unavailable",
                                extra={"error": str(getattr(exc, "orig", None) or exc)[:300]})
            else:
                self._release(db, ident)
            return response

        return wrapper

    # -- steps ------------------------------------------------------------------

    def _where(self, ident):
        t = self.table
        return (t.c.subject == ident[0], t.c.key == ident[1], t.c.route == ident[2])

    def _claim(self, db, ident, fingerprint: str, sealer) -> Response | None:
        """Insert the in-progress row (None: go ahead) or return the stored answer."""
        deadline = time.monotonic() + self.wait
        while True:
            try:
                with db.transaction() as session:
                    row = session.execute(select(self.table).where(*self._where(ident))).first()
                    if row is None:
                        session.execute(insert(self.table).values(
                            subject=ident[0], key=ident[1], route=ident[2], fingerprint=fingerprint,
                            created_at=utcnow()))
                        return None
                    if row.fingerprint != fingerprint:
                        raise Invalid({HEADER: ["this key was already used with a different request"]},
                                      detail=f"{HEADER} reused with a different request")
                    if row.status is not None:
                        return _replay(row, sealer)
                    if utcnow() - _aware(row.created_at) > timedelta(seconds=self.lease):
                        # Its request died without answering: take it over.
                        session.execute(update(self.table).where(*self._where(ident))
                                        .values(created_at=utcnow()))
                        return None
            except IntegrityError:
                pass  # a concurrent twin inserted it first: look again
            if time.monotonic() > deadline:
                raise Problem(409, "a request with this Idempotency-Key is still in progress; retry shortly",
                              type="idempotency-in-progress", headers={"Retry-After": "1"})
            time.sleep(0.05)

    def _store(self, db, ident, response: Response, sealer) -> None:
        body = response.get_data(as_text=True)
        with db.transaction() as session:
            session.execute(update(self.table).where(*self._where(ident)).values(
                status=response.status_code, body=sealer.seal(body, SEAL_PURPOSE) if sealer else body,
                content_type=response.content_type, location=response.headers.get("Location")))

    def _release(self, db, ident) -> None:
        with db.transaction() as session:
            session.execute(delete(self.table).where(*self._where(ident), self.table.c.status.is_(None)))

    def purge(self, db, now: datetime | None = None) -> int:
        """Forget keys older than ``ttl``; returns how many."""
        cutoff = (now or utcnow()) - self.ttl
        with db.transaction() as session:
            return session.execute(delete(self.table).where(self.table.c.created_at < cutoff)).rowcount

    def forget_expired(self, runtime, stop) -> None:
        """A worker's background loop (``ServiceSpec.background``): :meth:`purge` at start
        and every ``runtime.extras["idempotency_purge_seconds"]`` (600). A retry comes
        within minutes; a key and its stored answer are forgotten once older than ``ttl``."""
        keep_tidy(stop, runtime.extras.get("idempotency_purge_seconds", 600.0), lambda: self.purge(runtime.db),
                  "expired idempotency keys")


def _fingerprint() -> str:
    raw = request.get_data(cache=True)
    body = raw
    if raw and request.is_json:
        # The kit's reader (nesting limit; parsed once, shared with the route's schema).
        # Any other body — a photo — is hashed as its bytes, never read as JSON.
        try:
            body = json.dumps(request_json(), sort_keys=True, separators=(",", ":")).encode()
        except ValueError:
            pass  # not JSON after all: its bytes; the route's schema answers 422
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    digest.update(body)
    return digest.hexdigest()


def _replay(row, sealer) -> Response:
    body = sealer.open(row.body, SEAL_PURPOSE) if sealer else row.body
    response = Response(body, status=row.status, content_type=row.content_type)
    if row.location:
        response.headers["Location"] = row.location
    response.headers["Idempotent-Replayed"] = "true"
    return response
