"""Personal data rights (PIPL): a person downloads what every service holds about her,
and can have it erased everywhere by one event.

Each service declares what it holds with a hook on its spec::

    class Held(privacy.PersonalData):
        def export(self, runtime, session, user_id) -> dict: ...   # her part, plain words
        def erase(self, runtime, session, user_id, at) -> None: ... # erase or anonymise it

    spec = ServiceSpec(..., personal_data=Held())

(``privacy.HOLDS_NOTHING`` for a service that keeps nothing about people; a unit
test checks that every registered service declares one.) The kit then:

* serves ``GET /me/personal-data`` on every service: the hook's ``export`` for the
  caller, plus the kit's own part (who on the staff read her data: the audit trail
  lines about her);
* erases on ``identity.user.erased`` (the kit's queue ``<service>.accounts``): in
  the consumer's transaction it refuses her remaining access tokens
  (:mod:`gridkit.access`), deletes the kit's rows that hold her data (stored
  idempotent answers) and calls the hook's ``erase``. A redelivery is skipped by
  the inbox; the hook may still be called twice for one person (a replay), so it
  must be idempotent;
* assembles the whole download for identity (:func:`collect`): each service's
  ``GET /me/personal-data`` called over HTTP with the person's own token, at
  ``GRIDGOV_<SERVICE>_URL``. No service reads another's tables.

The rule every hook follows: identifiers go (name, phone, national ID, email,
photos, where she lives), the facts the platform must keep stay (a case, its
category, place, times and rating) under her user id, which after identity's
erasure points at nobody. Free text kept for a case loses the clear values the
service knows of her (:func:`redact`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from flask import request
from marshmallow import fields
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from . import access
from .auth import authenticated, current_principal
from .problems import Problem
from .schemas import Schema

if TYPE_CHECKING:
    from .service import Runtime, ServiceSpec

RUNTIME = "gridgov.runtime"  # session.info key: the service's Runtime (hooks need its extras)
ERASED_NAME = "已注销用户"  # what a name becomes once its person is erased
REDACTED = "***"  # what a known clear value becomes inside kept free text
IDEMPOTENCY_TABLE = "idempotency_keys"
COLLECT_TIMEOUT = 10.0  # seconds per service when assembling a download


class PersonalData:
    """What a service holds about people: how to export it and how to erase it."""

    def export(self, runtime: Runtime, session: Session, user_id: str) -> dict:
        """Everything this service holds about ``user_id``, in plain field names
        (datetimes may stay datetimes: the kit writes them with their offset)."""
        raise NotImplementedError

    def erase(self, runtime: Runtime, session: Session, user_id: str, at: datetime) -> None:
        """Erase or irreversibly anonymise it, in ``session``'s transaction. Idempotent."""
        raise NotImplementedError


class HoldsNothing(PersonalData):
    """A service that keeps nothing about people beyond the kit's own tables."""

    def export(self, runtime, session, user_id) -> dict:
        return {}

    def erase(self, runtime, session, user_id, at) -> None:
        return None


HOLDS_NOTHING = HoldsNothing()


# --- erasure ---------------------------------------------------------------------------------

def subscribe(spec: ServiceSpec) -> None:
    """``identity.user.erased`` on the kit's queue ``<service>.accounts``."""
    from contracts.identity import USER_ERASED

    subscriptions = spec.subscriptions
    assert subscriptions is not None  # ServiceSpec.__post_init__ makes them
    queue = subscriptions.queues.get(f"{subscriptions.consumer}.accounts")
    if queue is not None and USER_ERASED.type in queue.handlers:
        return  # already subscribed (a spec built twice over the same subscriptions); a service's
        # own handler of the event on another queue does not count

    @subscriptions.on(USER_ERASED, purpose="accounts")
    def erase_personal_data(session: Session, event) -> None:
        erase(session.info[RUNTIME], session, event.data["user_id"], event.data["at"])


def erase(runtime: Runtime, session: Session, user_id: str, at: datetime) -> None:
    """Everything the service holds about ``user_id``: the kit's rows, then the hook's."""
    metadata = runtime.spec.base.metadata
    access.record(session, metadata, user_id, at)  # tokens issued until now are refused here
    if IDEMPOTENCY_TABLE in metadata.tables:  # stored answers (sealed) may show her contact
        table = metadata.tables[IDEMPOTENCY_TABLE]
        session.execute(delete(table).where(table.c.subject == user_id))
    if runtime.spec.personal_data is not None:
        runtime.spec.personal_data.erase(runtime, session, user_id, at)


def redact(text: str | None, values: Iterable[str | None]) -> str | None:
    """``text`` without the clear ``values`` (a name, a phone number) it may contain."""
    if not text:
        return text
    for value in sorted({v for v in values if v and len(v) >= 2}, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text


# --- export ----------------------------------------------------------------------------------

def readable(value: Any, tz: ZoneInfo) -> Any:
    """JSON a person can read: datetimes as ISO 8601 with their offset, in ``tz``
    (stored times are UTC; SQLite hands them back without a zone)."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(tz).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): readable(v, tz) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [readable(v, tz) for v in value]
    return value


def part(runtime: Runtime, user_id: str) -> dict:
    """This service's part of a person's download."""
    from .audit import TABLE as TRAIL

    trail = runtime.spec.base.metadata.tables[TRAIL]
    with runtime.db.sessions() as session:
        hook = runtime.spec.personal_data
        data = hook.export(runtime, session, user_id) if hook is not None else {}
        reads = session.execute(select(trail.c.at, trail.c.actor_roles, trail.c.action, trail.c.resource,
                                       trail.c.reason).where(trail.c.subject_id == user_id)
                                .order_by(trail.c.id)).all()
    tz = runtime.settings.tz  # times in a download: the platform's zone, with their offset
    return readable({
        "service": runtime.spec.name,
        "description": runtime.spec.description,
        "user_id": user_id,
        "exported_at": datetime.now(UTC),
        "data": data,
        # Who on the staff read her personal data here: their roles, not who they are.
        "reads_by_staff": [{"at": r.at, "by_roles": [x for x in r.actor_roles.split(",") if x],
                            "action": r.action, "what": r.resource, "reason": r.reason} for r in reads],
    }, tz)


class Part(Schema):
    service = fields.String()
    description = fields.String()
    user_id = fields.String()
    exported_at = fields.String(metadata={"description": "ISO 8601 with its offset"})
    data = fields.Dict(metadata={"description": "What this service holds about you, by kind"})
    reads_by_staff = fields.List(fields.Dict(), metadata={
        "description": "Each time staff read your personal data here: when, their roles, what and why"})


def blueprint():
    from .web import Blueprint

    blp = Blueprint("personal-data", __name__, description="What this service holds about you (PIPL)")

    @blp.get("/me/personal-data")
    @authenticated
    @blp.response(200, Part)
    def my_personal_data():
        """Everything this service holds about you, and every read of it by staff. identity's
        ``GET /me/personal-data/download`` assembles every service's part into one document."""
        from .service import runtime

        return part(runtime(), current_principal().subject)

    return blp


def service_urls(runtime: Runtime) -> dict[str, str]:
    """Where each other service of the platform answers: ``GRIDGOV_<SERVICE>_URL``, else the
    port it listens on locally (``GRIDGOV_<SERVICE>_PORT`` or its default, as ``make run``)."""
    from . import registry

    urls = {}
    for name in registry.available():
        if name == runtime.spec.name:
            continue
        key = name.upper()
        url = runtime.settings.extra.get(f"GRIDGOV_{key}_URL") or os.environ.get(f"GRIDGOV_{key}_URL")
        if not url:
            port = os.environ.get(f"GRIDGOV_{key}_PORT") or registry.load(name).port
            url = f"http://127.0.0.1:{port}"
        urls[name] = url.rstrip("/")
    return urls


def collect(runtime: Runtime, user_id: str, authorization: str | None = None) -> dict:
    """The whole download: this service's part and every other service's, each fetched
    from its own ``GET /me/personal-data`` with the person's own token (the caller's
    ``Authorization`` header). Any service that does not answer makes it a 503 naming it:
    a download that silently missed a part would mislead."""
    import requests

    authorization = authorization or request.headers.get("Authorization", "")
    urls = service_urls(runtime)

    def fetch(name: str) -> tuple[str, dict | str]:
        try:
            answer = requests.get(f"{urls[name]}/me/personal-data", headers={"Authorization": authorization},
                                  timeout=COLLECT_TIMEOUT)
        except requests.RequestException as exc:
            return name, f"unreachable ({type(exc).__name__})"
        if answer.status_code != 200:
            return name, f"answered {answer.status_code}"
        return name, answer.json()

    parts: dict[str, Any] = {runtime.spec.name: part(runtime, user_id)}
    with ThreadPoolExecutor(max_workers=max(1, len(urls))) as pool:
        fetched = dict(pool.map(fetch, urls))
    missing = {name: why for name, why in fetched.items() if isinstance(why, str)}
    if missing:
        raise Problem(503, "the download would be incomplete: "
                      + "; ".join(f"{name} {why}" for name, why in sorted(missing.items())),
                      type="unavailable", headers={"Retry-After": "30"}, services=sorted(missing))
    parts |= fetched
    return {
        "user_id": user_id,
        "exported_at": readable(datetime.now(UTC), runtime.settings.tz),
        "about": "Everything the gridgov platform holds about you, one section per service. "
                 "Each section lists that service's data and every read of it by staff.",
        "services": parts,
    }
