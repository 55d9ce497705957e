"""HTTP door into intake: categories, photos, petitions and the resident's own view.

Photos are uploaded as the raw request body (``Content-Type: image/jpeg``,
``image/png`` or ``image/webp``), not multipart: one photo per request, no
form parsing, and the type is checked against the bytes' magic numbers.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from types import SimpleNamespace

from flask import Response, request
from marshmallow import RAISE, ValidationError, fields, validate, validates_schema
from sqlalchemy import or_, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gridkit import audit
from gridkit.auth import Principal, authenticated, current_principal, require_roles
from gridkit.crypto import DataKey
from gridkit.db import insert_at_commit
from gridkit.i18n import request_language
from gridkit.idempotency import IDEMPOTENCY_PARAMETER
from gridkit.pagination import Cursor, Text
from gridkit.problems import Conflict, Forbidden, Invalid, NotFound, Problem
from gridkit.schemas import Id, Schema
from gridkit.service import runtime
from gridkit.web import Blueprint, Page

from . import domain
from .events import (
    CHANNELS,
    PETITION_FOLLOWED,
    PETITION_MERGED,
    PETITION_RATED,
    PETITION_REOPENED,
    PETITION_SUBMITTED,
    PETITION_WITHDRAWN,
)
from .handlers import add_step
from .tables import (
    Building,
    Category,
    Follower,
    GridName,
    Petition,
    Photo,
    Step,
    aware,
    idempotency,
    outbox,
    utcnow,
)

blp = Blueprint("intake", __name__, description="Petitions from every channel, categories, photos, "
                "and the resident's own view: list, detail, timeline, withdraw, rating, rework.")
IDEMPOTENT = {"parameters": [IDEMPOTENCY_PARAMETER]}

CODE = validate.Regexp(r"^[a-z][a-z0-9_]{1,63}$", error="lowercase letters, digits and _")
NETWORK = validate.Regexp(r"^[a-z][a-z0-9_-]{1,31}$", error="lowercase letters, digits, _ -")
PHONE = validate.Regexp(r"^\+?[0-9][0-9-]{4,19}$", error="digits, optionally +country and dashes")
USER_ID = validate.Length(min=1, max=64)
# Petitions are listed newest first; a page's cursor is the last one's (submitted_at, id).
NEWEST_FIRST = Cursor(datetime, Text(36))


# --------------------------------------------------------------------------
# schemas
# --------------------------------------------------------------------------


class CategoryIn(Schema):
    code = fields.String(required=True, validate=CODE)
    name_zh = fields.String(required=True, validate=validate.Length(1, 100))
    name_en = fields.String(required=True, validate=validate.Length(1, 100))
    network = fields.String(required=True, validate=NETWORK)
    claim_minutes = fields.Integer(required=True, validate=validate.Range(1, 7 * 24 * 60))
    handle_hours = fields.Integer(required=True, validate=validate.Range(1, 365 * 24))
    handle_minutes = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(1, 365 * 24 * 60),
                                    metadata={"description": "Handling deadline in minutes for urgent "
                                              "categories (a safety hazard: 30); when set it wins over handle_hours"})
    working_hours = fields.Boolean(load_default=False)
    active = fields.Boolean(load_default=True)


class CategoryPatch(Schema):
    name_zh = fields.String(validate=validate.Length(1, 100))
    name_en = fields.String(validate=validate.Length(1, 100))
    network = fields.String(validate=NETWORK)
    claim_minutes = fields.Integer(validate=validate.Range(1, 7 * 24 * 60))
    handle_hours = fields.Integer(validate=validate.Range(1, 365 * 24))
    handle_minutes = fields.Integer(allow_none=True, validate=validate.Range(1, 365 * 24 * 60),
                                    metadata={"description": "null goes back to handle_hours"})
    working_hours = fields.Boolean()
    active = fields.Boolean()


class CategoryOut(CategoryIn):
    pass


class PlaceIn(Schema):
    lon = fields.Float(validate=validate.Range(-180, 180))
    lat = fields.Float(validate=validate.Range(-90, 90))
    building_id = Id()

    @validates_schema
    def point_or_building(self, data, **kwargs):
        point = "lon" in data or "lat" in data
        if point == ("building_id" in data) or (point and not ("lon" in data and "lat" in data)):
            raise ValidationError("give either lon and lat, or building_id")


class PlaceOut(Schema):
    lon = fields.Float()
    lat = fields.Float()
    building_id = fields.Integer(allow_none=True)


class ContactIn(Schema):
    name = fields.String(validate=validate.Length(1, 50))
    phone = fields.String(validate=PHONE)


class PetitionIn(Schema):
    channel = fields.String(load_default="app", validate=validate.OneOf(CHANNELS))
    category = fields.String(required=True, validate=validate.Length(1, 64))
    description = fields.String(required=True, validate=validate.Length(1, domain.MAX_DESCRIPTION))
    place = fields.Nested(PlaceIn, required=True)
    photos = fields.List(fields.String(validate=validate.Length(1, 36)), load_default=list,
                         validate=validate.Length(max=domain.MAX_PHOTOS))
    anonymous = fields.Boolean(load_default=False)
    public = fields.Boolean(load_default=False, metadata={
        "description": "Let followers (me too) see the description and photos; never the contact"})
    reporter_id = fields.String(validate=USER_ID, metadata={
        "description": "Operator channels: the resident's identity user id"})
    contact = fields.Nested(ContactIn, metadata={
        "description": "Operator channels: name and phone (required); app: phone (optional)"})
    closed_on_spot = fields.Boolean(load_default=False)
    result = fields.String(validate=validate.Length(1, 2000))
    separate = fields.Boolean(load_default=False, metadata={
        "description": "Submit even though similar open petitions exist nearby"})


class ReporterOut(Schema):
    id = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    masked = fields.Boolean()


class PetitionOut(Schema):
    id = fields.String()
    channel = fields.String()
    category = fields.String()
    network = fields.String()
    description = fields.String(allow_none=True, metadata={
        "description": "null for a follower unless the report is public"})
    place = fields.Nested(PlaceOut, allow_none=True, metadata={
        "description": "null for a follower unless the report is public (grid_id says where)"})
    status = fields.String()
    anonymous = fields.Boolean()
    public = fields.Boolean(metadata={"description": "the reporter let followers see the description and photos"})
    closed_on_spot = fields.Boolean()
    result = fields.String(allow_none=True)
    reporter = fields.Nested(ReporterOut, allow_none=True)
    relation = fields.String(metadata={"description": "reporter | follower | staff"})
    photos = fields.List(fields.String())
    followers = fields.Integer()
    case_id = fields.String(allow_none=True)
    grid_id = fields.Integer(allow_none=True)
    merged_into = fields.String(allow_none=True)
    rating = fields.Integer(allow_none=True)
    rating_comment = fields.String(allow_none=True)
    submitted_at = fields.DateTime()
    resolved_at = fields.DateTime(allow_none=True)


class PetitionPage(Schema):
    items = fields.List(fields.Nested(PetitionOut))
    next_cursor = fields.String(allow_none=True)


class PetitionsQuery(Page):
    cursor = NEWEST_FIRST.field()


class StaffQuery(PetitionsQuery):
    status = fields.String(validate=validate.OneOf(tuple(domain.RANK) + domain.TERMINAL))
    category = fields.String(validate=validate.Length(1, 64))


class StepOut(Schema):
    at = fields.DateTime()
    kind = fields.String()
    text = fields.String()
    petition_id = fields.String()


class TimelineOut(Schema):
    petition_id = fields.String()
    status = fields.String()
    language = fields.String()
    steps = fields.List(fields.Nested(StepOut))


class RatingIn(Schema):
    rating = fields.Integer(required=True, validate=validate.Range(1, 5))
    comment = fields.String(load_default=None, validate=validate.Length(max=500))


class ReworkIn(Schema):
    reason = fields.String(required=True, validate=validate.Length(1, 500))


class MergeIn(Schema):
    into = fields.String(required=True, validate=validate.Length(1, 36))


class PhotoOut(Schema):
    id = fields.String()
    content_type = fields.String()
    size = fields.Integer()


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def data_key() -> DataKey:
    return runtime().extras["data_key"]


def load_petition(session: Session, petition_id: str, *, lock: bool = False) -> Petition:
    petition = session.get(Petition, petition_id, with_for_update=lock) if len(petition_id) <= 36 else None
    if petition is None:
        raise NotFound("petition", petition_id)
    return petition


def followers_of(session: Session, petition_id: str) -> set[str]:
    return set(session.scalars(select(Follower.user_id).where(Follower.petition_id == petition_id)))


def sight_of(session: Session, p: Petition | SimpleNamespace, principal: Principal, *,
             followers: set[str] | None = None) -> domain.Sight | None:
    """What this principal may see of the petition (domain.sight decides)."""
    return domain.sight(principal, reporter_id=p.reporter_id,
                        followers=followers_of(session, p.id) if followers is None else followers,
                        public=bool(p.public), anonymous=p.anonymous, handlers=p.handler_ids,
                        submitted_by=p.submitted_by)


def readable(session: Session, petition_id: str, principal: Principal) -> Petition:
    petition = load_petition(session, petition_id)
    if sight_of(session, petition, principal) is None:
        raise Forbidden("only the reporter, followers and staff may read this petition")
    return petition


def reporter_only(petition: Petition, principal: Principal) -> None:
    if principal.subject != petition.reporter_id:
        raise Forbidden("only the resident who reported it may do this")


def rule(check, *args) -> None:
    try:
        check(*args)
    except domain.RuleBroken as exc:
        raise (Forbidden(str(exc)) if exc.status == 403 else Conflict(str(exc))) from None


def petition_out(session: Session, p: Petition | SimpleNamespace, principal: Principal, *,
                 followers: set[str] | None = None, photos: list[str] | None = None,
                 contact: tuple[str | None, str | None] | None = None) -> dict:
    """The petition as its reader may see it (domain.sight); ``followers``, ``photos`` and the
    plain ``contact`` (name, phone) when the caller knows them already (a petition just submitted)."""
    followers = followers_of(session, p.id) if followers is None else followers
    seen = sight_of(session, p, principal, followers=followers)
    if seen is None:
        raise Forbidden("only the reporter, followers and staff may read this petition")
    view = seen.contact
    reporter = None
    if view != "hidden" and contact is None:
        key = data_key()
        contact = key.open_optional(p.contact_name, "name"), key.open_optional(p.contact_phone, "phone")
        if view == "full" and principal.subject != p.reporter_id and any(contact):
            # Staff reading a resident's contact in clear: a line of the audit trail, written
            # with the read's transaction (the route's db.transaction()).
            audit.record_at_commit(session, principal, "read_contact", subject_id=p.reporter_id,
                                   resource=f"petition:{p.id}")
    contact = domain.shown_contact(view, *contact) if view != "hidden" and contact else None
    if contact is not None:
        reporter = contact | {"id": p.reporter_id if view == "full" else None}
    if not seen.content:
        photos = []
    elif photos is None:
        photos = session.scalars(select(Photo.id).where(Photo.petition_id == p.id).order_by(Photo.position)).all()
    return {
        "id": p.id, "channel": p.channel, "category": p.category, "network": p.network,
        "description": p.description if seen.content else None, "status": p.status,
        "anonymous": p.anonymous, "public": bool(p.public),
        "place": {"lon": p.lon, "lat": p.lat, "building_id": p.building_id} if seen.place else None,
        "closed_on_spot": p.closed_on_spot, "result": p.result if seen.words else None, "reporter": reporter,
        "relation": seen.relation, "photos": list(photos), "followers": len(followers),
        "case_id": p.case_id, "grid_id": p.grid_id, "merged_into": p.merged_into,
        "rating": p.rating, "rating_comment": p.rating_comment if seen.words else None,
        "submitted_at": aware(p.submitted_at), "resolved_at": aware(p.resolved_at),
    }


def page_of(session: Session, stmt, after: tuple | None, limit: int, principal: Principal) -> dict:
    """Newest first, keyed by (submitted_at, id): stable under inserts."""
    if after:
        stmt = stmt.where(tuple_(Petition.submitted_at, Petition.id) < tuple_(*after))
    rows = session.scalars(stmt.order_by(Petition.submitted_at.desc(), Petition.id.desc())
                           .limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    items = [petition_out(session, p, principal) for p in rows]
    last = rows[-1] if rows else None
    return {"items": items, "next_cursor": NEWEST_FIRST.encode(aware(last.submitted_at), last.id)
            if more and last else None}


def now() -> datetime:
    return utcnow()


# --------------------------------------------------------------------------
# categories
# --------------------------------------------------------------------------


def category_out(c: Category) -> dict:
    return {k: getattr(c, k) for k in CategoryOut().fields}


@blp.get("/categories")
@authenticated
@blp.response(200, CategoryOut(many=True))
def list_categories():
    with runtime().db.sessions() as session:
        return [category_out(c) for c in session.scalars(select(Category).order_by(Category.code))]


@blp.post("/categories")
@blp.doc(**IDEMPOTENT)
@idempotency.idempotent
@require_roles(*domain.CATEGORY_EDITORS)
@blp.arguments(CategoryIn)
@blp.response(201, CategoryOut)
def create_category(body):
    try:
        with runtime().db.transaction() as session:
            if session.get(Category, body["code"]) is not None:
                raise Conflict(f"category {body['code']} already exists")
            category = Category(**body)
            session.add(category)
            session.flush()
            runtime().extras["categories"].forget()
            return category_out(category)
    except IntegrityError:
        raise Conflict(f"category {body['code']} already exists") from None


@blp.patch("/categories/<string:code>")
@require_roles(*domain.CATEGORY_EDITORS)
@blp.arguments(CategoryPatch)
@blp.response(200, CategoryOut)
def update_category(body, code):
    with runtime().db.transaction() as session:
        category = session.get(Category, code) if len(code) <= 64 else None
        if category is None:
            raise NotFound("category", code)
        for name, value in body.items():
            setattr(category, name, value)
        runtime().extras["categories"].forget()
        return category_out(category)


# --------------------------------------------------------------------------
# photos
# --------------------------------------------------------------------------

PHOTO_BODY = {"required": True, "content": {
    t: {"schema": {"type": "string", "format": "binary"}} for t in domain.PHOTO_TYPES}}


@blp.post("/photos")
@blp.doc(requestBody=PHOTO_BODY, **IDEMPOTENT)
@idempotency.idempotent
@require_roles(*domain.UPLOADERS)
@blp.response(201, PhotoOut)
def upload_photo():
    declared = request.mimetype
    if declared not in domain.PHOTO_TYPES:
        raise Problem(415, f"send the photo as the raw body with Content-Type {', '.join(domain.PHOTO_TYPES)}",
                      type="unsupported-media-type")
    if (request.content_length or 0) > domain.MAX_PHOTO_BYTES:
        raise Problem(413, f"a photo may be at most {domain.MAX_PHOTO_BYTES // (1024 * 1024)} MiB",
                      type="too-large")
    data = request.get_data(cache=True)
    if len(data) > domain.MAX_PHOTO_BYTES:
        raise Problem(413, f"a photo may be at most {domain.MAX_PHOTO_BYTES // (1024 * 1024)} MiB",
                      type="too-large")
    actual = domain.sniff_image(data[:16])
    if actual != declared:
        raise Invalid({"body": [f"the bytes are not a {declared.split('/')[1].upper()} image"]},
                      detail="the photo's content does not match its Content-Type")
    address = runtime().extras["photos"].put(data)
    with runtime().db.transaction() as session:
        photo = Photo(id=str(uuid.uuid4()), sha256=address, content_type=actual, size=len(data),
                      uploaded_by=current_principal().subject, uploaded_at=now())
        session.add(photo)
    return {"id": photo.id, "content_type": photo.content_type, "size": photo.size}, 201, \
        {"Location": f"/photos/{photo.id}"}


@blp.get("/photos/<string:photo_id>")
@blp.doc(responses={"200": {"description": "The photo's bytes", "content": {
    t: {"schema": {"type": "string", "format": "binary"}} for t in domain.PHOTO_TYPES}}})
@authenticated
def get_photo(photo_id):
    principal = current_principal()
    with runtime().db.sessions() as session:
        photo = session.get(Photo, photo_id) if len(photo_id) <= 36 else None
        if photo is None:
            raise NotFound("photo", photo_id)
        seen = None
        if photo.petition_id and not domain.may_see_photo(principal, photo.uploaded_by, None):
            seen = sight_of(session, session.get(Petition, photo.petition_id), principal)
        if not domain.may_see_photo(principal, photo.uploaded_by, seen):
            raise Forbidden("only its uploader, the reporter, staff and followers of a public report "
                            "may see this photo")
    try:
        data = runtime().extras["photos"].get(photo.sha256)
    except FileNotFoundError:  # deleted meanwhile (retention, erasure)
        raise NotFound("photo", photo_id) from None
    return Response(data, content_type=photo.content_type, headers={
        "Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"})


# --------------------------------------------------------------------------
# petitions
# --------------------------------------------------------------------------


def resolve_place(session: Session, place: dict) -> tuple[float, float, int | None]:
    if "building_id" in place:
        building = session.get(Building, place["building_id"])
        if building is None:
            raise Invalid({"place": [f"unknown building {place['building_id']}"]})
        return building.lon, building.lat, building.id
    return place["lon"], place["lat"], None


def similar_open(session: Session, category: str, lon: float, lat: float) -> list[dict]:
    x0, y0, x1, y1 = domain.box_around(lon, lat, domain.DUPLICATE_METRES)
    since = now() - domain.DUPLICATE_WINDOW
    rows = session.execute(select(Petition.id, Petition.status, Petition.lon, Petition.lat, Petition.submitted_at)
                           .where(Petition.category == category, Petition.lat.between(y0, y1),
                                  Petition.lon.between(x0, x1), Petition.submitted_at >= since,
                                  Petition.status.in_(domain.OPEN)).limit(50)).all()
    return domain.similar(lon, lat, now(), [domain.Nearby(r.id, r.status, r.lon, r.lat, aware(r.submitted_at),
                                                          category) for r in rows])


def attach_photos(session: Session, petition_id: str, ids: list[str], principal: Principal) -> None:
    if not ids:
        return
    photos = {p.id: p for p in session.scalars(select(Photo).where(Photo.id.in_(ids)).with_for_update())}
    for position, photo_id in enumerate(ids):
        photo = photos.get(photo_id)
        if photo is None or photo.uploaded_by != principal.subject:
            raise Invalid({"photos": [f"no photo {photo_id} uploaded by you"]})
        if photo.petition_id is not None:
            raise Invalid({"photos": [f"photo {photo_id} already belongs to a petition"]})
        photo.petition_id, photo.position = petition_id, position


@blp.post("/petitions")
@blp.doc(**IDEMPOTENT)
@idempotency.idempotent
@authenticated
@blp.arguments(PetitionIn)
@blp.response(201, PetitionOut)
def submit(body):
    principal = current_principal()
    channel = body["channel"]
    if not domain.may_submit(principal, channel):
        raise Forbidden(f"the {channel} channel requires one of the roles: "
                        f"{', '.join(domain.CHANNEL_ROLES[channel])}")
    errors = domain.submission_errors(body, principal)
    if errors:
        raise Invalid(errors)
    contact = body.get("contact") or {}
    operator = channel != "app"
    reporter_id = body.get("reporter_id") or principal.subject
    name = contact.get("name") if operator else (principal.name or contact.get("name"))
    key = data_key()
    rt = runtime()
    with rt.db.transaction() as session:
        category = rt.extras["categories"].get(session, body["category"])
        if category is None or not category.active:
            raise Invalid({"category": [f"unknown category {body['category']}"]})
        lon, lat, building_id = resolve_place(session, body["place"])
        areas = rt.extras["places"].locate(session, lon, lat)
        if "county" not in areas:
            raise Invalid({"place": ["the place is outside every county served here"]})
        if not body["separate"] and not body["closed_on_spot"]:
            similar = similar_open(session, category.code, lon, lat)
            if similar:
                raise Problem(409, "similar petitions are open nearby: follow one of them (me too), "
                              'or submit again with "separate": true', type="duplicate", similar=similar)
        at = now()
        on_spot = body["closed_on_spot"]
        row = {
            "id": str(uuid.uuid4()), "channel": channel, "category": category.code,
            "network": category.network, "description": body["description"], "lon": lon, "lat": lat,
            "building_id": building_id, "county_code": areas.get("county"),
            "street_code": areas.get("street"), "community_code": areas.get("community"),
            "reporter_id": reporter_id, "submitted_by": principal.subject if operator else None,
            "anonymous": body["anonymous"], "public": body["public"], "contact_name": key.seal_optional(name, "name"),
            "contact_phone": key.seal_optional(contact.get("phone"), "phone"),
            "closed_on_spot": on_spot, "status": "resolved" if on_spot else "submitted",
            "case_id": None, "grid_id": None, "handlers": "[]", "result": body.get("result") if on_spot else None,
            "merged_into": None, "rating": None, "rating_comment": None, "rated_at": None,
            "resolved_at": at if on_spot else None, "submitted_at": at, "updated_at": at,
        }
        # The hot path: a plain row written at commit with its timeline line and event, not an
        # ORM object in the unit of work (its bookkeeping cost more than the statement). The
        # answer reads it as it would read a Petition. Photos attached below are flushed after it.
        insert_at_commit(session, Petition.__table__, row)
        petition = SimpleNamespace(**row, handler_ids=set())
        attach_photos(session, petition.id, body["photos"], principal)
        if body["closed_on_spot"]:
            add_step(session, petition.id, "submitted_on_spot", at, result=body["result"])
        else:
            add_step(session, petition.id, "submitted", at, channel=channel)
        outbox.record(session, PETITION_SUBMITTED, {
            "petition_id": petition.id, "category": category.code, "network": category.network,
            "channel": channel, "place": {"lon": lon, "lat": lat, "building_id": building_id},
            "reporter_id": reporter_id, "submitted_by": petition.submitted_by,
            "anonymous": petition.anonymous, "claim_minutes": category.claim_minutes,
            "handle_hours": category.handle_hours, "handle_minutes": category.handle_minutes,
            "working_hours": category.working_hours,
            "closed_on_spot": petition.closed_on_spot, "photos": len(body["photos"]),
            "submitted_at": at,
        }, subject=petition.id)
        out = petition_out(session, petition, principal, followers=set(), photos=body["photos"],
                           contact=(name, contact.get("phone")))
    return out, 201, {"Location": f"/petitions/{petition.id}"}


@blp.get("/petitions")
@require_roles(*domain.LIST_ROLES)
@blp.arguments(StaffQuery, location="query", unknown=RAISE)
@blp.response(200, PetitionPage)
def list_petitions(query):
    """Coarse scope: a county admin sees all; a street/community admin the petitions located in
    the divisions of their scopes (``division:<code>``, or a ``grid:<id>``'s community)."""
    principal = current_principal()
    with runtime().db.transaction() as session:
        stmt = select(Petition)
        if not principal.has_role("county_admin"):
            codes = set()
            for grant in principal.grants_for(*domain.LIST_ROLES):
                if grant.scope == "county":
                    codes = None
                    break
                if grant.scope_type == "division":
                    codes.add(grant.scope_id)
                elif grant.scope_type == "grid" and (grant.scope_id or "").isdigit():
                    grid = session.get(GridName, int(grant.scope_id)) if len(grant.scope_id) < 18 else None
                    if grid and grid.division_code:
                        codes.add(grid.division_code)
            if codes is not None:
                stmt = stmt.where(or_(Petition.county_code.in_(codes), Petition.street_code.in_(codes),
                                      Petition.community_code.in_(codes)))
        for name in ("status", "category"):
            if name in query:
                stmt = stmt.where(getattr(Petition, name) == query[name])
        return page_of(session, stmt, query.get("cursor"), query["limit"], principal)


@blp.get("/me/petitions")
@authenticated
@blp.arguments(PetitionsQuery, location="query", unknown=RAISE)
@blp.response(200, PetitionPage)
def my_petitions(query):
    """Petitions I reported and those I follow (me too, or merged into), newest first."""
    principal = current_principal()
    with runtime().db.transaction() as session:
        following = select(Follower.petition_id).where(Follower.user_id == principal.subject)
        stmt = select(Petition).where(or_(Petition.reporter_id == principal.subject,
                                          Petition.id.in_(following)))
        return page_of(session, stmt, query.get("cursor"), query["limit"], principal)


@blp.get("/petitions/<string:petition_id>")
@authenticated
@blp.response(200, PetitionOut)
def get_petition(petition_id):
    principal = current_principal()
    with runtime().db.transaction() as session:
        return petition_out(session, readable(session, petition_id, principal), principal)


@blp.get("/petitions/<string:petition_id>/timeline")
@authenticated
@blp.response(200, TimelineOut)
def timeline(petition_id):
    """Every step in plain words (zh-CN, or English with ``Accept-Language: en``). A merged
    petition's timeline continues with the kept petition's steps."""
    principal = current_principal()
    lang = request_language()
    tz = runtime().settings.tz
    with runtime().db.sessions() as session:
        petition = readable(session, petition_id, principal)
        ids = [petition.id] + ([petition.merged_into] if petition.merged_into else [])
        steps = session.scalars(select(Step).where(Step.petition_id.in_(ids))
                                .order_by(Step.at, Step.id)).all()
        # A merged petition's steps continue with the kept one's, read as its reader sees that one.
        seen = {petition.id: sight_of(session, petition, principal)}
        if petition.merged_into:
            seen[petition.merged_into] = sight_of(session, session.get(Petition, petition.merged_into),
                                                  principal) or domain.PROGRESS_ONLY
        return {"petition_id": petition.id, "status": petition.status, "language": lang, "steps": [
            {"at": aware(s.at), "kind": s.kind, "petition_id": s.petition_id,
             "text": domain.step_text(s.kind, json.loads(s.params), lang, seen[s.petition_id], tz=tz)} for s in steps]}, \
            200, {"Content-Language": lang}


@blp.post("/petitions/<string:petition_id>/withdraw")
@authenticated
@blp.response(200, PetitionOut)
def withdraw(petition_id):
    principal = current_principal()
    with runtime().db.transaction() as session:
        petition = load_petition(session, petition_id, lock=True)
        reporter_only(petition, principal)
        rule(domain.check_withdraw, petition.status)
        at = now()
        petition.status, petition.updated_at = "withdrawn", at
        add_step(session, petition.id, "withdrawn", at)
        outbox.record(session, PETITION_WITHDRAWN, {
            "petition_id": petition.id, "reporter_id": petition.reporter_id, "at": at}, subject=petition.id)
        return petition_out(session, petition, principal)


@blp.post("/petitions/<string:petition_id>/rating")
@authenticated
@blp.arguments(RatingIn)
@blp.response(200, PetitionOut)
def rate(body, petition_id):
    principal = current_principal()
    with runtime().db.transaction() as session:
        petition = load_petition(session, petition_id, lock=True)
        reporter_only(petition, principal)
        rule(domain.check_rating, petition.status, petition.rating is not None)
        at = now()
        petition.rating, petition.rating_comment, petition.rated_at = body["rating"], body["comment"], at
        add_step(session, petition.id, "rated", at, rating=body["rating"])
        outbox.record(session, PETITION_RATED, {
            "petition_id": petition.id, "reporter_id": petition.reporter_id, "rating": body["rating"],
            "at": at}, subject=petition.id)
        return petition_out(session, petition, principal)


@blp.post("/petitions/<string:petition_id>/rework")
@authenticated
@blp.arguments(ReworkIn)
@blp.response(200, PetitionOut)
def rework(body, petition_id):
    """不满意重办: after a rating ≤ 2, within 7 days of the resolution."""
    principal = current_principal()
    with runtime().db.transaction() as session:
        petition = load_petition(session, petition_id, lock=True)
        reporter_only(petition, principal)
        at = now()
        rule(domain.check_rework, petition.status, petition.rating, aware(petition.resolved_at), at)
        # A fresh resolution will be rated afresh; the old rating stays on the timeline.
        petition.status, petition.rating, petition.rating_comment, petition.rated_at = "reopened", None, None, None
        petition.updated_at = at
        add_step(session, petition.id, "rework_requested", at, reason=body["reason"])
        outbox.record(session, PETITION_REOPENED, {
            "petition_id": petition.id, "reporter_id": petition.reporter_id, "reason": body["reason"],
            "at": at}, subject=petition.id)
        return petition_out(session, petition, principal)


@blp.post("/petitions/<string:petition_id>/followers")
@blp.doc(**IDEMPOTENT)
@idempotency.idempotent
@require_roles("resident")
@blp.response(201, PetitionOut)
def follow(petition_id):
    """Me too: the resident follows an open petition instead of submitting a duplicate."""
    principal = current_principal()
    with runtime().db.transaction() as session:
        petition = load_petition(session, petition_id, lock=True)
        if petition.status not in domain.OPEN:
            raise Conflict(f"only an open petition can be followed; this one is {petition.status}")
        if principal.subject == petition.reporter_id:
            raise Conflict("you reported this petition; you follow it already")
        if session.get(Follower, (petition.id, principal.subject)) is not None:
            return petition_out(session, petition, principal), 200
        at = now()
        session.add(Follower(petition_id=petition.id, user_id=principal.subject, via="me_too", since=at))
        add_step(session, petition.id, "followed", at)
        outbox.record(session, PETITION_FOLLOWED, {
            "petition_id": petition.id, "follower_id": principal.subject, "at": at}, subject=petition.id)
        session.flush()
        return petition_out(session, petition, principal)


@blp.post("/petitions/<string:petition_id>/merge")
@require_roles(*domain.MERGE_ROLES)
@blp.arguments(MergeIn)
@blp.response(200, PetitionOut)
def merge(body, petition_id):
    """Staff merge a duplicate into a kept petition; its reporter and followers follow the kept one.
    Scope is coarse: any community/street/county admin may merge."""
    principal = current_principal()
    with runtime().db.transaction() as session:
        # Lock both in id order: two merges in opposite directions cannot deadlock.
        first, second = sorted([petition_id, body["into"]])
        rows = {p.id: p for p in (load_petition(session, first, lock=True),
                                  load_petition(session, second, lock=True))}
        duplicate, kept = rows[petition_id], rows[body["into"]]
        rule(domain.check_merge, duplicate.id, duplicate.status, kept.id, kept.status)
        at = now()
        duplicate.status, duplicate.merged_into, duplicate.updated_at = "merged", kept.id, at
        already = followers_of(session, kept.id) | {kept.reporter_id}
        for user_id in ({duplicate.reporter_id} | followers_of(session, duplicate.id)) - already:
            session.add(Follower(petition_id=kept.id, user_id=user_id, via="merge", since=at))
        add_step(session, duplicate.id, "merged", at)
        add_step(session, kept.id, "merged_in", at)
        outbox.record(session, PETITION_MERGED, {
            "petition_id": duplicate.id, "into_petition_id": kept.id, "reporter_id": duplicate.reporter_id,
            "by": principal.subject, "at": at}, subject=duplicate.id)
        session.flush()
        return petition_out(session, duplicate, principal)
