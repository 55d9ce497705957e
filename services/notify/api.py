"""HTTP door into notify: my inbox (with live push), my contacts and preferences,
and the operators' view of deliveries."""

from __future__ import annotations

import json

from flask import Response, request
from marshmallow import RAISE, ValidationError, fields, validate, validates
from sqlalchemy import func, select, update

from gridkit import audit
from gridkit.auth import authenticated, current_principal, require_roles
from gridkit.crypto import mask_phone
from gridkit.pagination import Cursor, RowId, paginate
from gridkit.problems import Invalid, NotFound
from gridkit.schemas import Schema
from gridkit.service import runtime
from gridkit.web import Blueprint, Page

from . import rules
from .handlers import preferences_of
from .stream import stream_notices
from .tables import Contact, Delivery, Notice, Preference, utcnow

blp = Blueprint("notify", __name__, description="Notices: my inbox with live push (SSE), my contacts "
                "and preferences for email and SMS, and delivery records for operators.")

OPERATORS = ("sysadmin", "county_admin")
PHONE = validate.Regexp(r"^\+?[0-9]{6,15}$", error="digits only, optionally with a leading +")
STATUSES = ("pending", "sent", "dead")
# Notices and deliveries are listed newest first; a page's cursor is the last id given out.
NEWEST_FIRST = Cursor(RowId())


# --------------------------------------------------------------------------
# schemas
# --------------------------------------------------------------------------


class StrictBoolean(fields.Boolean):
    """JSON true/false only (marshmallow would also take "yes", 1, "on")."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise ValidationError("must be true or false")
        return value


class NoticeOut(Schema):
    id = fields.Integer()
    kind = fields.String()
    critical = fields.Boolean()
    title = fields.String()
    body = fields.String()
    case_id = fields.String(allow_none=True)
    petition_id = fields.String(allow_none=True)
    created_at = fields.DateTime()
    read_at = fields.DateTime(allow_none=True)


class NoticePage(Schema):
    items = fields.List(fields.Nested(NoticeOut))
    next_cursor = fields.String(allow_none=True)


class NoticeQuery(Page):
    cursor = NEWEST_FIRST.field()
    unread = fields.Boolean(load_default=False, metadata={"description": "only notices not yet read"})


class UnreadCount(Schema):
    unread = fields.Integer()


class Marked(Schema):
    marked = fields.Integer()


class ContactsIn(Schema):
    email = fields.Email(allow_none=True, validate=validate.Length(max=254),
                         metadata={"description": "null removes it; absent leaves it as it is"})
    phone = fields.String(allow_none=True, validate=PHONE)


class ContactsOut(Schema):
    email = fields.String(allow_none=True, metadata={"description": "masked"})
    phone = fields.String(allow_none=True, metadata={"description": "masked"})


class PreferencesIn(Schema):
    language = fields.String(validate=validate.OneOf(rules.LANGUAGES))
    channels = fields.Dict(keys=fields.String(validate=validate.OneOf(rules.OUTSIDE_CHANNELS)),
                           values=StrictBoolean(),
                           metadata={"description": "email/sms on or off; the inbox is always on"})
    muted_kinds = fields.List(fields.String(validate=validate.OneOf(rules.KINDS)),
                              validate=validate.Length(max=len(rules.KINDS)))

    @validates("muted_kinds")
    def _not_critical(self, value, **kwargs):
        critical = sorted(set(value) & rules.CRITICAL_KINDS)
        if critical:
            raise ValidationError(f"critical notices cannot be muted: {', '.join(critical)}")


class PreferencesOut(Schema):
    language = fields.String()
    channels = fields.Dict(keys=fields.String(), values=fields.Boolean())
    muted_kinds = fields.List(fields.String())
    critical_kinds = fields.List(fields.String(), metadata={"description": "always delivered"})
    available_channels = fields.List(fields.String(), metadata={"description": "configured here"})


class DeliveryQuery(Page):
    cursor = NEWEST_FIRST.field()
    status = fields.String(validate=validate.OneOf(STATUSES))
    channel = fields.String(validate=validate.OneOf(rules.OUTSIDE_CHANNELS))


class DeliveryOut(Schema):
    id = fields.Integer()
    notice_id = fields.Integer()
    recipient_id = fields.String()
    kind = fields.String()
    channel = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime(allow_none=True)
    last_error = fields.String(allow_none=True)
    provider_ref = fields.String(allow_none=True)
    created_at = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)


class DeliveryPage(Schema):
    items = fields.List(fields.Nested(DeliveryOut))
    next_cursor = fields.String(allow_none=True)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def me() -> str:
    return current_principal().subject


def newest_first(session, query, model, after: tuple | None, limit: int) -> dict:
    """A page ordered by id, newest first; the cursor is the last id returned."""
    rows, next_cursor = paginate(session, query, [model.id], after, limit, NEWEST_FIRST, descending=True)
    return {"items": rows, "next_cursor": next_cursor}


def mask_email(email: str) -> str:
    """``zhang.wei@example.cn`` → ``z***@example.cn``."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def masked(contact: Contact | None) -> dict:
    sealer = runtime().extras["sealer"]
    if contact is None:
        return {"email": None, "phone": None}
    return {
        "email": mask_email(sealer.open(contact.email_sealed, "contact.email")) if contact.email_sealed else None,
        "phone": mask_phone(sealer.open(contact.phone_sealed, "contact.sms")) if contact.phone_sealed else None,
    }


def preferences_body(row: Preference | None) -> dict:
    prefs = preferences_of(row)
    return {"language": prefs.language, "channels": prefs.channels, "muted_kinds": sorted(prefs.muted_kinds),
            "critical_kinds": sorted(rules.CRITICAL_KINDS),
            "available_channels": sorted(runtime().extras["notify_config"].available_channels)}


# --------------------------------------------------------------------------
# my inbox
# --------------------------------------------------------------------------


@blp.get("/me/notifications")
@authenticated
@blp.arguments(NoticeQuery, location="query", unknown=RAISE)
@blp.response(200, NoticePage)
def my_notifications(query):
    with runtime().db.sessions() as session:
        select_ = select(Notice).where(Notice.recipient_id == me())
        if query["unread"]:
            select_ = select_.where(Notice.read_at.is_(None))
        return newest_first(session, select_, Notice, query.get("cursor"), query["limit"])


@blp.get("/me/notifications/unread-count")
@authenticated
@blp.response(200, UnreadCount)
def my_unread_count():
    with runtime().db.sessions() as session:
        return {"unread": session.scalar(select(func.count()).select_from(Notice).where(
            Notice.recipient_id == me(), Notice.read_at.is_(None)))}


@blp.post("/me/notifications/<int:notice_id>/read")
@authenticated
@blp.response(200, NoticeOut)
def mark_read(notice_id: int):
    with runtime().db.transaction() as session:
        notice = session.get(Notice, notice_id)
        if notice is None or notice.recipient_id != me():  # someone else's notice does not exist for you
            raise NotFound("notice", notice_id)
        notice.read_at = notice.read_at or utcnow()
        return notice


@blp.post("/me/notifications/read-all")
@authenticated
@blp.response(200, Marked)
def mark_all_read():
    with runtime().db.transaction() as session:
        done = session.execute(update(Notice).where(Notice.recipient_id == me(), Notice.read_at.is_(None))
                               .values(read_at=utcnow()))
        return {"marked": done.rowcount}


@blp.get("/me/notifications/stream")
@authenticated
@blp.doc(summary="Live notices (Server-Sent Events)", description=(
    "text/event-stream: `event: notice` with the notice as JSON and its id as the SSE id; "
    "comment heartbeats between. The response ends after a while; reconnect with "
    "`Last-Event-ID` to receive what arrived meanwhile."),
    responses={"200": {"description": "an event stream",
                       "content": {"text/event-stream": {"schema": {"type": "string"}}}}})
def my_stream():
    rt = runtime()
    config = rt.extras["notify_config"]
    last_event_id = None
    header = request.headers.get("Last-Event-ID", "").strip()
    if header:
        if not (header.isascii() and header.isdigit()) or len(header) > 18:  # "²".isdigit() too
            raise Invalid({"Last-Event-ID": ["must be a notice id this stream sent"]})
        last_event_id = int(header)
    body = stream_notices(rt.db, rt.extras["broadcaster"], me(), last_event_id=last_event_id,
                          lifetime=config.stream_seconds, heartbeat=config.heartbeat_seconds)
    return Response(body, content_type="text/event-stream; charset=utf-8",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# --------------------------------------------------------------------------
# my contacts and preferences
# --------------------------------------------------------------------------


@blp.get("/me/contacts")
@authenticated
@blp.response(200, ContactsOut)
def my_contacts():
    with runtime().db.sessions() as session:
        return masked(session.get(Contact, me()))


@blp.put("/me/contacts")
@authenticated
@blp.arguments(ContactsIn)
@blp.response(200, ContactsOut)
def register_contacts(body):
    sealer = runtime().extras["sealer"]
    with runtime().db.transaction() as session:
        contact = session.get(Contact, me()) or Contact(user_id=me())
        if "email" in body:
            contact.email_sealed = sealer.seal(body["email"].strip(), "contact.email") if body["email"] else None
        if "phone" in body:
            contact.phone_sealed = sealer.seal(body["phone"], "contact.sms") if body["phone"] else None
        contact.updated_at = utcnow()
        session.add(contact)
        return masked(contact)


@blp.get("/me/preferences")
@authenticated
@blp.response(200, PreferencesOut)
def my_preferences():
    with runtime().db.sessions() as session:
        return preferences_body(session.get(Preference, me()))


@blp.put("/me/preferences")
@authenticated
@blp.arguments(PreferencesIn)
@blp.response(200, PreferencesOut)
def set_preferences(body):
    """Fields given replace the stored ones; fields left out stay as they are."""
    with runtime().db.transaction() as session:
        row = session.get(Preference, me()) or Preference(user_id=me(), language="zh-CN",
                                                          channels="{}", muted_kinds="[]")
        if "language" in body:
            row.language = body["language"]
        if "channels" in body:
            row.channels = json.dumps({**json.loads(row.channels), **body["channels"]})
        if "muted_kinds" in body:
            row.muted_kinds = json.dumps(sorted(set(body["muted_kinds"])))
        row.updated_at = utcnow()
        session.add(row)
        session.flush()
        return preferences_body(row)


# --------------------------------------------------------------------------
# operators
# --------------------------------------------------------------------------


@blp.get("/deliveries")
@require_roles(*OPERATORS)
@blp.arguments(DeliveryQuery, location="query", unknown=RAISE)
@blp.response(200, DeliveryPage)
def deliveries(query):
    """Email and SMS deliveries, newest first, for operators. Whom each was for (and a
    failure's reason, which may quote an address) is personal: every person on the page
    is a line of the audit trail."""
    principal = current_principal()
    with runtime().db.transaction() as session:
        select_ = select(Delivery)
        if query.get("status"):
            select_ = select_.where(Delivery.status == query["status"])
        if query.get("channel"):
            select_ = select_.where(Delivery.channel == query["channel"])
        page = newest_first(session, select_, Delivery, query.get("cursor"), query["limit"])
        for recipient in dict.fromkeys(d.recipient_id for d in page["items"]):
            audit.record_at_commit(session, principal, "read_deliveries", subject_id=recipient,
                                   resource="deliveries")
        return page
