"""HTTP door into dispatch: staff's queues, commands on cases, whistles, figures."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, date, datetime, time

from marshmallow import RAISE, ValidationError, fields, validate, validates_schema
from sqlalchemy import false, or_, select, true
from sqlalchemy.orm import Session

from gridkit.auth import Principal, current_principal, require_roles
from gridkit.pagination import Cursor, Text, paginate
from gridkit.problems import Conflict, Forbidden, Invalid, NotFound
from gridkit.schemas import MAX_ID, Id, Schema
from gridkit.service import runtime
from gridkit.web import Blueprint, Page

from . import cases, domain, workdays
from .projection import Snapshot, current_snapshot
from .tables import (
    Case,
    CommunitySettings,
    Consultation,
    Extension,
    KnownDivision,
    Note,
    Offer,
    Summons,
    Transition,
    Whistle,
)

blp = Blueprint("dispatch", __name__, description="Cases: routing, approval, claiming, handling, "
                "deadlines and escalation, whistle and report-in, follow-up, figures.")

CODE = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", error="letters, digits, . _ - only")
TEXT = validate.Length(min=1, max=4000)
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Cases are listed in id order (UUIDv7: oldest first); a page's cursor is the last case id.
CASES = Cursor(Text(36))
PHOTO_ID = validate.Regexp(r"^[A-Za-z0-9._-]{1,64}$", error="a photo id from intake")


# --------------------------------------------------------------------------
# schemas
# --------------------------------------------------------------------------


class TransitionOut(Schema):
    at = fields.DateTime()
    by = fields.String(allow_none=True)
    action = fields.String()
    from_state = fields.String(allow_none=True)
    to_state = fields.String()
    level = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)


class NoteOut(Schema):
    id = fields.Integer()
    by = fields.String()
    at = fields.DateTime()
    text = fields.String()
    photos = fields.List(fields.String())


class ExtensionOut(Schema):
    id = fields.Integer()
    requested_by = fields.String()
    requested_at = fields.DateTime()
    hours = fields.Integer()
    reason = fields.String()
    decision = fields.String()
    decided_by = fields.String(allow_none=True)
    decided_at = fields.DateTime(allow_none=True)
    comment = fields.String(allow_none=True)


class SummonsOut(Schema):
    whistle_id = fields.String()
    department = fields.String()
    report_in_due = fields.DateTime()
    reported_in_at = fields.DateTime(allow_none=True)
    reported_by = fields.String(allow_none=True)
    late = fields.Boolean(allow_none=True)
    missed = fields.Boolean()
    handling = fields.String(allow_none=True)
    handled_at = fields.DateTime(allow_none=True)
    score = fields.Integer(allow_none=True)


class WhistleOut(Schema):
    id = fields.String()
    by = fields.String()
    at = fields.DateTime()
    report_in_due = fields.DateTime()
    reason = fields.String(allow_none=True)
    departments = fields.List(fields.Nested(SummonsOut))


class Decision(Schema):
    decision = fields.String(required=True, validate=TEXT)
    owner = fields.String(required=True, validate=validate.Length(min=1, max=200))


class ConsultationOut(Schema):
    id = fields.Integer()
    held_on = fields.Date()
    attendees = fields.List(fields.String())
    decisions = fields.List(fields.Nested(Decision))
    recorded_by = fields.String()
    recorded_at = fields.DateTime()


class CaseOut(Schema):
    id = fields.String()
    petition_id = fields.String()
    reporter_id = fields.String(allow_none=True, metadata={"description": "null when the resident is anonymous"})
    category = fields.String()
    network = fields.String()
    channel = fields.String()
    lon = fields.Float()
    lat = fields.Float()
    grid_id = fields.Integer(allow_none=True)
    community = fields.String(allow_none=True)
    street = fields.String(allow_none=True)
    county = fields.String(allow_none=True)
    catch_all = fields.Boolean()
    state = fields.String()
    level = fields.String()
    offered_to = fields.List(fields.String())
    claimed_by = fields.String(allow_none=True)
    step = fields.String(allow_none=True)
    step_started_at = fields.DateTime(allow_none=True)
    step_due_at = fields.DateTime(allow_none=True)
    light = fields.String(allow_none=True, metadata={"description": "green < 80 %, yellow 80–100 %, red overdue"})
    time_used = fields.Float(allow_none=True, metadata={"description": "Fraction of the step's time used"})
    opened_at = fields.DateTime()
    claimed_at = fields.DateTime(allow_none=True)
    resolved_at = fields.DateTime(allow_none=True)
    result = fields.String(allow_none=True)
    closed_at = fields.DateTime(allow_none=True)
    outcome = fields.String(allow_none=True)
    rating = fields.Integer(allow_none=True)
    supervised_at = fields.DateTime(allow_none=True, metadata={
        "description": "督办: when a supervisor last flagged the case for supervision (null: never)"})
    supervised_by = fields.String(allow_none=True)
    unattended_since = fields.DateTime(allow_none=True, metadata={
        "description": "Since when nobody can take it (nobody to offer it to or to approve it): alerted"})


class CaseDetail(CaseOut):
    transitions = fields.List(fields.Nested(TransitionOut))
    notes = fields.List(fields.Nested(NoteOut))
    extensions = fields.List(fields.Nested(ExtensionOut))
    whistles = fields.List(fields.Nested(WhistleOut))
    consultations = fields.List(fields.Nested(ConsultationOut))


class CasePage(Schema):
    items = fields.List(fields.Nested(CaseOut))
    next_cursor = fields.String(allow_none=True)


class QueueQuery(Page):
    cursor = CASES.field()
    which = fields.String(load_default="all", validate=validate.OneOf(("offered", "claimed", "all")),
                          metadata={"description": "offered to me, claimed by me, or both"})


class CaseQuery(Page):
    cursor = CASES.field()
    grid = Id()
    state = fields.String(validate=validate.OneOf(domain.STATES))
    network = fields.String(validate=validate.Length(max=32))
    community = fields.String(validate=CODE)
    level = fields.String(validate=validate.OneOf(domain.LEVELS))
    overdue = fields.Boolean()
    light = fields.String(validate=validate.OneOf((domain.GREEN, domain.YELLOW, domain.RED)))
    supervised = fields.Boolean(metadata={"description": "flagged for supervision (督办) at least once, or never"})
    unattended = fields.Boolean(metadata={"description": "nobody can take it (alerted), or somebody can"})


class ApproveIn(Schema):
    grid_id = Id(load_default=None, allow_none=True,
                 metadata={"description": "Route to another grid of the case's network"})
    reason = fields.String(load_default=None, allow_none=True, validate=TEXT)


class NoteIn(Schema):
    text = fields.String(load_default="", validate=validate.Length(max=4000))
    photos = fields.List(fields.String(validate=PHOTO_ID), load_default=list, validate=validate.Length(max=9))

    @validates_schema
    def _something(self, data, **kwargs):
        if not data["text"].strip() and not data["photos"]:
            raise ValidationError("a note needs text or photos", "text")


class ExtensionIn(Schema):
    hours = fields.Integer(required=True, validate=validate.Range(1, 720))
    reason = fields.String(required=True, validate=TEXT)


class DecisionIn(Schema):
    approved = fields.Boolean(required=True)
    comment = fields.String(load_default=None, allow_none=True, validate=TEXT)


class ReasonIn(Schema):
    reason = fields.String(required=True, validate=TEXT)


class ReassignIn(Schema):
    to = fields.String(required=True, validate=validate.Length(1, 64),
                       metadata={"description": "User id of a grid worker or grid head on a grid you supervise"})
    reason = fields.String(required=True, validate=TEXT)


class SuperviseIn(Schema):
    hours = fields.Integer(required=True, validate=validate.Range(1, 720),
                           metadata={"description": "The deadline: the current step is due this many hours from now"})
    reason = fields.String(required=True, validate=TEXT)


class ResolveIn(Schema):
    result = fields.String(required=True, validate=TEXT)


class WhistleIn(Schema):
    departments = fields.List(fields.String(validate=CODE), required=True, validate=validate.Length(1, 10))
    report_in_hours = fields.Integer(required=True, validate=validate.Range(1, 720))
    reason = fields.String(load_default=None, allow_none=True, validate=TEXT)

    @validates_schema
    def _distinct(self, data, **kwargs):
        if len(set(data["departments"])) != len(data["departments"]):
            raise ValidationError("name each department once", "departments")


class DepartmentIn(Schema):
    department = fields.String(load_default=None, allow_none=True, validate=CODE,
                               metadata={"description": "Needed only if you serve several whistled departments"})


class HandlingIn(DepartmentIn):
    text = fields.String(required=True, validate=TEXT)


class ScoreIn(Schema):
    department = fields.String(required=True, validate=CODE)
    score = fields.Integer(required=True, validate=validate.Range(1, 5))


class ConsultationIn(Schema):
    held_on = fields.Date(required=True)
    attendees = fields.List(fields.String(validate=validate.Length(min=1, max=200)), required=True,
                            validate=validate.Length(1, 100))
    decisions = fields.List(fields.Nested(Decision, unknown=RAISE), required=True, validate=validate.Length(0, 100))


class SettingsIn(Schema):
    approval_required = fields.Boolean(required=True)
    review_required = fields.Boolean(required=True)


class SettingsOut(SettingsIn):
    community = fields.String()
    updated_by = fields.String(allow_none=True)
    updated_at = fields.DateTime(allow_none=True)


class CalendarDayIn(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(workdays.KINDS), metadata={
        "description": "holiday: a day off the national calendar does not give; working_day: a day the "
                       "county works though the national calendar rests"})
    name = fields.String(required=True, validate=validate.Length(1, 100), metadata={"description": "e.g. 三月街"})


class CalendarDayOut(CalendarDayIn):
    date = fields.Date(attribute="day")
    set_by = fields.String()
    set_at = fields.DateTime()


class CalendarQuery(Schema):
    year = fields.Integer(load_default=None, validate=validate.Range(1900, 2999))


class CalendarOut(Schema):
    timezone = fields.String(metadata={"description": "GRIDGOV_TIMEZONE: working hours are local to it"})
    working_hours = fields.String(metadata={"description": "on every working day, e.g. 09:00-18:00"})
    national_years = fields.List(fields.Integer(), metadata={
        "description": "first and last year the national calendar knows; later years count Monday to "
                       "Friday plus the county's days"})
    days = fields.List(fields.Nested(CalendarDayOut), metadata={"description": "the county's own days"})


class FiguresQuery(Schema):
    by = fields.String(required=True, validate=validate.OneOf(("grid", "community", "department")))
    since = fields.Date(load_default=None)
    until = fields.Date(load_default=None)


class FigureRow(Schema):
    key = fields.String()
    opened = fields.Integer()
    offered = fields.Integer()
    claimed_in_time = fields.Integer()
    response_rate = fields.Float(allow_none=True)
    resolved = fields.Integer()
    resolution_rate = fields.Float(allow_none=True)
    rated = fields.Integer()
    satisfied = fields.Integer()
    satisfaction_rate = fields.Float(allow_none=True)
    median_claim_seconds = fields.Float(allow_none=True)
    overdue = fields.Integer()
    supervised = fields.Integer(metadata={"description": "cases flagged for supervision (督办)"})
    mean_score = fields.Float(allow_none=True, metadata={"description": "by=department: 赋分 mean"})


class Figures(Schema):
    by = fields.String()
    rows = fields.List(fields.Nested(FigureRow))


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def command(case_id: str | None = None):
    """A unit of work for a staff command: the case locked, domain refusals as problems."""
    with runtime().db.transaction() as session:
        try:
            case = cases.load(session, case_id) if case_id else None
            yield session, current_snapshot(session), case, current_principal()
        except LookupError:
            raise NotFound("case", case_id) from None
        except domain.NotPermitted as exc:
            raise Forbidden(exc.reason) from None
        except domain.Refused as exc:
            raise Conflict(exc.reason, state=exc.state or (case.state if case is not None else None)) from None
        except domain.Invalid as exc:
            raise Invalid({exc.field: [exc.reason]}) from None


def visible_case(session: Session, snapshot: Snapshot, case: Case, actor: Principal) -> None:
    if not cases.may_see(session, snapshot, case, actor):
        raise Forbidden("this case is outside your scope")


def case_view(session: Session, case: Case, at: datetime, *, detail: bool = False) -> dict:
    light, used = domain.traffic_light(case.step_started_at, case.step_due_at, at,
                                       workdays.for_case(session, case)) \
        if case.step_due_at is not None else (None, None)
    view = {column: getattr(case, column) for column in CaseOut._declared_fields if hasattr(Case, column)}
    view |= {"reporter_id": None if case.anonymous else case.reporter_id,
             "offered_to": cases.offered_to(session, case), "light": light, "time_used": used}
    if not detail:
        return view
    by_case = Transition.case_id == case.id
    whistles = session.execute(select(Whistle).where(Whistle.case_id == case.id).order_by(Whistle.at)).scalars()
    view["transitions"] = session.execute(select(Transition).where(by_case).order_by(Transition.id)).scalars().all()
    view["notes"] = [{"id": n.id, "by": n.by, "at": n.at, "text": n.text, "photos": json.loads(n.photos)}
                     for n in session.execute(select(Note).where(Note.case_id == case.id).order_by(Note.id)).scalars()]
    view["extensions"] = session.execute(select(Extension).where(Extension.case_id == case.id)
                                         .order_by(Extension.id)).scalars().all()
    view["whistles"] = [{"id": w.id, "by": w.by, "at": w.at, "report_in_due": w.report_in_due, "reason": w.reason,
                         "departments": session.execute(select(Summons).where(Summons.whistle_id == w.id)
                                                        .order_by(Summons.department)).scalars().all()}
                        for w in whistles]
    view["consultations"] = [{"id": c.id, "held_on": c.held_on, "attendees": json.loads(c.attendees),
                              "decisions": json.loads(c.decisions), "recorded_by": c.recorded_by,
                              "recorded_at": c.recorded_at}
                             for c in session.execute(select(Consultation).where(Consultation.case_id == case.id)
                                                      .order_by(Consultation.id)).scalars()]
    return view


def visible_filter(actor: Principal, snapshot: Snapshot):
    """The SQL twin of domain.may_see: what a staff member may list."""
    me = actor.subject
    conditions = [Case.claimed_by == me, Case.id.in_(select(Offer.case_id).where(Offer.user_id == me))]
    grid_roots: set[int] = set()
    division_codes: set[str] = set()
    departments: set[str] = set()
    for scope in domain.grants(actor, *domain.STAFF):
        kind, _, ident = scope.partition(":")
        if scope == "county":
            return true()
        if kind == "grid" and ident.isdigit() and int(ident) <= MAX_ID:  # a scope the database can hold
            grid_roots.add(int(ident))
        elif kind == "division":
            division_codes.add(ident)
        elif kind == "department":
            departments.add(ident)
    if actor.has_role("county_admin"):
        return true()
    if grid_roots:
        conditions.append(Case.grid_id.in_(sorted(snapshot.subtree(grid_roots))))
    if division_codes:
        codes = sorted(division_codes)
        conditions.append(or_(Case.community.in_(codes), Case.street.in_(codes), Case.county.in_(codes)))
    if departments:
        conditions.append(Case.id.in_(select(Summons.case_id).where(Summons.department.in_(sorted(departments)))))
    return or_(*conditions) if conditions else false()


def page(session: Session, query, args: dict, at: datetime) -> dict:
    rows, next_cursor = paginate(session, query, [Case.id], args.get("cursor"), args["limit"], CASES)
    return {"items": [case_view(session, case, at) for case in rows], "next_cursor": next_cursor}


def staff_route(view: Callable) -> Callable:
    return require_roles(*domain.STAFF)(view)


# --------------------------------------------------------------------------
# queries
# --------------------------------------------------------------------------


@blp.get("/cases/queue")
@staff_route
@blp.arguments(QueueQuery, location="query", unknown=RAISE)
@blp.response(200, CasePage)
def my_queue(args):
    """Offered to me (still unclaimed) and claimed by me (still being handled)."""
    me, at = current_principal().subject, now()
    offered = Case.id.in_(select(Offer.case_id).where(Offer.user_id == me)) & (Case.state == domain.OFFERED)
    mine = (Case.claimed_by == me) & Case.state.in_(domain.HANDLING + (domain.REVIEWING,))
    which = {"offered": offered, "claimed": mine, "all": or_(offered, mine)}[args["which"]]
    with runtime().db.sessions() as session:
        return page(session, select(Case).where(which), args, at)


@blp.get("/cases")
@staff_route
@blp.arguments(CaseQuery, location="query", unknown=RAISE)
@blp.response(200, CasePage)
def list_cases(args):
    """Cases in my scope: grid staff their grids, admins their division, officers what was whistled to them."""
    at = now()
    with runtime().db.sessions() as session:
        query = select(Case).where(visible_filter(current_principal(), current_snapshot(session)))
        for name, column in (("grid", Case.grid_id), ("state", Case.state), ("network", Case.network),
                             ("community", Case.community), ("level", Case.level)):
            if args.get(name) is not None:
                query = query.where(column == args[name])
        running = Case.state.in_(domain.OPEN) & Case.step_due_at.is_not(None)
        if args.get("overdue") is not None:
            overdue = running & (Case.step_due_at <= at)
            query = query.where(overdue if args["overdue"] else ~overdue)
        for name, column in (("supervised", Case.supervised_at), ("unattended", Case.unattended_since)):
            if args.get(name) is not None:
                query = query.where(column.is_not(None) if args[name] else column.is_(None))
        light = args.get("light")
        if light == domain.RED:
            query = query.where(running, Case.step_due_at <= at)
        elif light == domain.YELLOW:
            query = query.where(running, Case.yellow_at <= at, Case.step_due_at > at)
        elif light == domain.GREEN:
            query = query.where(running, Case.yellow_at > at)
        return page(session, query, args, at)


@blp.get("/cases/<case_id>")
@staff_route
@blp.response(200, CaseDetail)
def get_case(case_id):
    at = now()
    with runtime().db.sessions() as session:
        case = session.get(Case, case_id)
        if case is None:
            raise NotFound("case", case_id)
        visible_case(session, current_snapshot(session), case, current_principal())
        return case_view(session, case, at, detail=True)


# --------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------


def answer(session: Session, case: Case, at: datetime) -> dict:
    session.flush()
    return case_view(session, case, at, detail=True)


@blp.post("/cases/<case_id>/approve")
@require_roles("community_admin", "county_admin")
@blp.arguments(ApproveIn)
@blp.response(200, CaseDetail)
def approve(body, case_id):
    """审批分配: the community's admin lets the case be offered (optionally to another grid)."""
    at = now()
    with command(case_id) as (session, snapshot, case, actor):
        cases.approve(session, snapshot, case, actor, at, body["grid_id"], body["reason"])
        return answer(session, case, at)


@blp.post("/cases/<case_id>/claim")
@staff_route
@blp.response(201, CaseDetail)
def claim(case_id):
    """秒认领: the first claim wins; the others get 409."""
    at = now()
    with command() as (session, snapshot, _, actor):
        try:
            case = cases.claim(session, snapshot, case_id, actor, at)
        except LookupError:
            raise NotFound("case", case_id) from None
        return answer(session, case, at)


@blp.post("/cases/<case_id>/notes")
@staff_route
@blp.arguments(NoteIn)
@blp.response(201, NoteOut)
def add_note(body, case_id):
    at = now()
    with command(case_id) as (session, snapshot, case, actor):
        entry = cases.note(session, snapshot, case, actor, at, body["text"].strip(), body["photos"])
        session.flush()
        return {"id": entry.id, "by": entry.by, "at": entry.at, "text": entry.text, "photos": body["photos"]}


@blp.post("/cases/<case_id>/extension")
@staff_route
@blp.arguments(ExtensionIn)
@blp.response(201, ExtensionOut)
def request_extension(body, case_id):
    at = now()
    with command(case_id) as (session, _, case, actor):
        extension = cases.request_extension(session, case, actor, at, body["hours"], body["reason"])
        session.flush()
        return extension


@blp.post("/cases/<case_id>/extension/decision")
@require_roles(*domain.ADMINS)
@blp.arguments(DecisionIn)
@blp.response(200, ExtensionOut)
def decide_extension(body, case_id):
    at = now()
    with command(case_id) as (session, snapshot, case, actor):
        return cases.decide_extension(session, snapshot, case, actor, at, body["approved"], body["comment"])


@blp.post("/cases/<case_id>/return")
@staff_route
@blp.arguments(ReasonIn)
@blp.response(200, CaseDetail)
def return_case(body, case_id):
    at = now()
    with command(case_id) as (session, _, case, actor):
        cases.return_case(session, case, actor, at, body["reason"])
        return answer(session, case, at)


@blp.post("/cases/<case_id>/resolve")
@staff_route
@blp.arguments(ResolveIn)
@blp.response(200, CaseDetail)
def resolve(body, case_id):
    at = now()
    with command(case_id) as (session, _, case, actor):
        cases.resolve(session, case, actor, at, body["result"])
        return answer(session, case, at)


@blp.post("/cases/<case_id>/review")
@require_roles("community_admin", "county_admin")
@blp.arguments(DecisionIn)
@blp.response(200, CaseDetail)
def review(body, case_id):
    at = now()
    with command(case_id) as (session, snapshot, case, actor):
        cases.review(session, snapshot, case, actor, at, body["approved"], body["comment"])
        return answer(session, case, at)


@blp.post("/cases/<case_id>/reassign")
@require_roles(*domain.SUPERVISORS)
@blp.arguments(ReassignIn)
@blp.response(200, CaseDetail)
def reassign(body, case_id):
    """Move a claimed, returned or unclaimed case to another worker, with a reason: the grid
    head of its grid or above, or an admin of its area, to a grid worker or grid head on a grid
    they supervise. The old and the new handler hear of it."""
    at = now()
    with command(case_id) as (session, snapshot, case, actor):
        cases.reassign(session, snapshot, case, actor, at, body["to"], body["reason"])
        return answer(session, case, at)


@blp.post("/cases/<case_id>/supervise")
@require_roles(*domain.SUPERVISORS)
@blp.arguments(SuperviseIn)
@blp.response(200, CaseDetail)
def supervise(body, case_id):
    """督办: flag the case for supervision. It climbs one rung of the ladder (grid → community
    → street → county), its current step is due in ``hours``, and its handler (or those who
    must act) hears of it; missing that deadline climbs it again."""
    at = now()
    with command(case_id) as (session, snapshot, case, actor):
        cases.supervise(session, snapshot, case, actor, at, body["hours"], body["reason"])
        return answer(session, case, at)


@blp.post("/cases/<case_id>/whistle")
@require_roles(*domain.ADMINS)
@blp.arguments(WhistleIn)
@blp.response(201, WhistleOut)
def whistle(body, case_id):
    """吹哨: summon departments; each must report in by the deadline."""
    at = now()
    with command(case_id) as (session, snapshot, case, actor):
        blown = cases.whistle(session, snapshot, case, actor, at, body["departments"], body["report_in_hours"],
                              body["reason"])
        session.flush()
        return {"id": blown.id, "by": blown.by, "at": blown.at, "report_in_due": blown.report_in_due,
                "reason": blown.reason, "departments": session.execute(
                    select(Summons).where(Summons.whistle_id == blown.id).order_by(Summons.department)).scalars().all()}


@blp.post("/cases/<case_id>/whistles/<whistle_id>/report-in")
@require_roles("dept_officer")
@blp.arguments(DepartmentIn)
@blp.response(200, SummonsOut)
def report_in(body, case_id, whistle_id):
    """报到: a whistled department acknowledges (late is recorded)."""
    at = now()
    with command(case_id) as (session, _, case, actor):
        try:
            return cases.report_in(session, case, whistle_id, actor, at, body["department"])
        except LookupError:
            raise NotFound("whistle", whistle_id) from None


@blp.post("/cases/<case_id>/whistles/<whistle_id>/handling")
@require_roles("dept_officer")
@blp.arguments(HandlingIn)
@blp.response(200, SummonsOut)
def department_handling(body, case_id, whistle_id):
    at = now()
    with command(case_id) as (session, _, case, actor):
        try:
            return cases.department_handling(session, case, whistle_id, actor, at, body["text"], body["department"])
        except LookupError:
            raise NotFound("whistle", whistle_id) from None


@blp.post("/cases/<case_id>/whistles/<whistle_id>/score")
@require_roles(*domain.ADMINS)
@blp.arguments(ScoreIn)
@blp.response(200, SummonsOut)
def score(body, case_id, whistle_id):
    """赋分: the grassroots score a department's response once the case is done."""
    at = now()
    with command(case_id) as (session, snapshot, case, actor):
        try:
            return cases.score(session, snapshot, case, whistle_id, actor, at, body["department"], body["score"])
        except LookupError:
            raise NotFound("whistle", whistle_id) from None


@blp.post("/cases/<case_id>/consultations")
@require_roles(*domain.ADMINS)
@blp.arguments(ConsultationIn)
@blp.response(201, ConsultationOut)
def consult(body, case_id):
    """会商: date, attendees, decisions and who owns each."""
    at = now()
    with command(case_id) as (session, snapshot, case, actor):
        meeting = cases.consult(session, snapshot, case, actor, at, body["held_on"], body["attendees"],
                                body["decisions"])
        session.flush()
        return {"id": meeting.id, "held_on": meeting.held_on, "attendees": body["attendees"],
                "decisions": body["decisions"], "recorded_by": meeting.recorded_by,
                "recorded_at": meeting.recorded_at}


# --------------------------------------------------------------------------
# community settings
# --------------------------------------------------------------------------


def community_in_scope(session: Session, code: str) -> None:
    division = session.execute(select(KnownDivision).where(KnownDivision.code == code)).scalar_one_or_none()
    if division is None or division.kind != "community":
        raise NotFound("community", code)
    actor = current_principal()
    if not (actor.has_role("county_admin") or f"division:{code}" in domain.grants(actor, "community_admin")):
        raise Forbidden("only the community's admins (or a county admin) set how its cases are dispatched")


def settings_view(code: str, settings: CommunitySettings) -> dict:
    return {"community": code, "approval_required": bool(settings.approval_required),
            "review_required": bool(settings.review_required), "updated_by": settings.updated_by,
            "updated_at": settings.updated_at}


@blp.get("/communities/<code>/settings")
@require_roles(*domain.ADMINS)
@blp.response(200, SettingsOut)
def get_settings(code):
    with runtime().db.sessions() as session:
        community_in_scope(session, code)
        return settings_view(code, cases.community_settings(session, code))


@blp.put("/communities/<code>/settings")
@require_roles("community_admin", "county_admin")
@blp.arguments(SettingsIn)
@blp.response(200, SettingsOut)
def put_settings(body, code):
    """Auto-assignment or approval first (审批); review before the resident is told."""
    with runtime().db.transaction() as session:
        community_in_scope(session, code)
        settings = session.get(CommunitySettings, code) or CommunitySettings(division_code=code)
        settings.approval_required, settings.review_required = body["approval_required"], body["review_required"]
        settings.updated_by, settings.updated_at = current_principal().subject, now()
        session.add(settings)
        return settings_view(code, settings)


# --------------------------------------------------------------------------
# the working calendar: the county's own days on top of the national calendar
# --------------------------------------------------------------------------


def calendar_date(value: str) -> date:
    try:
        if ISO_DATE.fullmatch(value):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise Invalid({"date": ["not a date: YYYY-MM-DD"]})


@contextmanager
def calendar_command():
    with runtime().db.transaction() as session:
        try:
            yield session, current_principal()
        except domain.NotPermitted as exc:
            raise Forbidden(exc.reason) from None


def calendar_day_view(row) -> dict:
    return {"day": row.day, "kind": row.kind, "name": row.name, "set_by": row.set_by, "set_at": row.set_at}


@blp.get("/calendar")
@staff_route
@blp.arguments(CalendarQuery, location="query", unknown=RAISE)
@blp.response(200, CalendarOut)
def get_calendar(args):
    """What working-hours deadlines count: working days of the national calendar (holidays
    off, 调休 make-up days on), 09:00–18:00 local time, with the county's own days on top."""
    with runtime().db.sessions() as session:
        return {"timezone": runtime().settings.timezone,
                "working_hours": f"{domain.DAY_START:%H:%M}-{domain.DAY_END:%H:%M}",
                "national_years": list(workdays.national_years()),
                "days": [calendar_day_view(row) for row in workdays.days(session, args["year"])]}


@blp.put("/calendar/days/<day>")
@require_roles("county_admin")
@blp.arguments(CalendarDayIn)
@blp.response(200, CalendarDayOut)
def set_calendar_day(body, day):
    """Add (or change) the county's own day off or working day on this date. Deadlines
    computed from then on count it; clocks already running keep their due time."""
    with calendar_command() as (session, actor):
        return calendar_day_view(workdays.set_day(session, actor, calendar_date(day), body["kind"],
                                                  body["name"], now()))


@blp.delete("/calendar/days/<day>")
@require_roles("county_admin")
@blp.response(204)
def remove_calendar_day(day):
    """Back to the national calendar on this date."""
    with calendar_command() as (session, actor):
        if not workdays.remove_day(session, actor, calendar_date(day)):
            raise NotFound("county calendar day", day)


# --------------------------------------------------------------------------
# figures: 三率
# --------------------------------------------------------------------------


@blp.get("/figures")
@staff_route
@blp.arguments(FiguresQuery, location="query", unknown=RAISE)
@blp.response(200, Figures)
def figures(args):
    """Response, resolution and satisfaction rates (三率), median claim time, overdue count,
    per grid, community or department, over the cases in my scope."""
    at = now()
    with runtime().db.sessions() as session:
        query = select(Case).where(visible_filter(current_principal(), current_snapshot(session)))
        if args["since"]:
            query = query.where(Case.opened_at >= datetime.combine(args["since"], time(), UTC))
        if args["until"]:
            query = query.where(Case.opened_at < datetime.combine(args["until"], time.max, UTC))
        rows = session.execute(query).scalars().all()
        keys: dict[str, list[str]] = {}
        scores: dict[str, list[int]] = {}
        if args["by"] == "department":
            for summons in session.execute(select(Summons).where(Summons.case_id.in_([c.id for c in rows]))).scalars():
                keys.setdefault(summons.case_id, []).append(summons.department)
                if summons.score is not None:
                    scores.setdefault(summons.department, []).append(summons.score)
        facts = []
        for case in rows:
            if args["by"] == "grid":
                group = [str(case.grid_id) if case.grid_id else "catch-all"]
            elif args["by"] == "community":
                group = [case.community or "none"]
            else:
                group = sorted(set(keys.get(case.id, [])))
            claim_seconds = (domain.aware(case.claimed_at) - domain.aware(case.first_offered_at)).total_seconds() \
                if case.claimed_at and case.first_offered_at else None
            in_time = bool(case.claimed_at and case.first_claim_due
                           and domain.aware(case.claimed_at) <= domain.aware(case.first_claim_due))
            overdue = case.state in domain.OPEN and case.step_due_at is not None \
                and domain.aware(case.step_due_at) <= at
            for key in group:
                facts.append(domain.CaseFacts(key, case.first_offered_at is not None, in_time, claim_seconds,
                                              case.resolved_at is not None or case.outcome in domain.RESOLVED_OUTCOMES,
                                              case.rating, overdue, supervised=case.supervised_at is not None))
        out = domain.figures(facts)
        for row in out:
            marks = scores.get(row["key"])
            row["mean_score"] = round(sum(marks) / len(marks), 2) if marks else None
        return {"by": args["by"], "rows": out}
