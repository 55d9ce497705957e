"""HTTP door into earning: a community's settings and award rules, hygiene inspections and
clean households, activities (publish, sign up, attend with the door code), and manual
awards and deductions with a second approver. Every route calls the use cases in
:mod:`points.awards`, :mod:`points.inspections` and :mod:`points.activities`.

Who may do what:

* settings, rules, activities, manual awards and deductions: a community admin of the
  community (``division:<community>``), a county admin, a sysadmin; auditors read;
* inspections: a grid worker (or grid head) of a grid in the community, or its admin;
* clean households and an activity's places: anyone signed in (the plaque is public);
* signing up and attending: anyone signed in (residents, party members), for themselves.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from marshmallow import RAISE, ValidationError, fields, validate, validates_schema
from sqlalchemy import select

from gridkit.auth import authenticated, current_principal, require_roles
from gridkit.pagination import Cursor, Text, paginate
from gridkit.problems import Forbidden, Invalid, NotFound
from gridkit.schemas import Id, Schema
from gridkit.service import runtime
from gridkit.web import Blueprint, Page

from . import activities, awards, inspections
from .api import (
    HOLDER,
    MOVERS,
    PLACE,
    READERS,
    TRANSFER_ID,
    UUID_TEXT,
    Amount,
    Whole,
    communities,
    problems,
)
from .domain import MAX_AMOUNT
from .tables import Activity, Adjustment, AwardRule

blp = Blueprint("earning", __name__, description="Earning points: award rules, hygiene inspections (清洁户), "
                "activities with sign-up and attendance, manual awards and deductions.")

MONTH = validate.Regexp(inspections.MONTH, error="YYYY-MM")
ADJUSTMENTS = Cursor(datetime, Text(36))  # newest first: (requested_at, id)


# --------------------------------------------------------------------------
# schemas
# --------------------------------------------------------------------------


class SettingsIn(Schema):
    pool_by_household = fields.Boolean(metadata={
        "description": "People's accounts count towards the household they are bound to"})
    hygiene_to = fields.String(validate=validate.OneOf(("household", "members")), metadata={
        "description": "A clean household's points go to its account, or to each member's"})
    hygiene_pass_mark = Whole(0, 100, metadata={"description": "Each of the three results must reach it"})
    approval_threshold = Whole(0, MAX_AMOUNT, metadata={
        "description": "A manual award or deduction above it waits for a second admin"})
    expiry_months = Whole(1, 240, allow_none=True, metadata={
        "description": "Points expire this many months after they were earned (null: never)"})


class SettingsOut(SettingsIn):
    community = fields.String()


class RuleIn(Schema):
    id = fields.String(required=True, validate=TRANSFER_ID, metadata={
        "description": "Chosen by the client (a UUID): sending it again is safe"})
    event = fields.String(required=True, validate=validate.OneOf(sorted(awards.SOURCES)), metadata={
        "description": "The event that awards, without its version"})
    condition = fields.Dict(keys=fields.String(validate=validate.Length(1, 64)), load_default=dict, metadata={
        "description": 'Every field test must hold: {"rating": {"gte": 4}, "outcome": {"in": ["rated"]}}; '
                       "operators eq, ne, gt, gte, lt, lte, in"})
    points = Amount(required=True)
    cap = Amount(load_default=None, metadata={"description": "At most this many points per person (or household) "
                                                             "per period from this rule"})
    period = fields.String(load_default=None, validate=validate.OneOf(awards.PERIODS))
    memo = fields.String(load_default=None, validate=validate.Length(1, 200))


class RuleOut(Schema):
    id = fields.String()
    community = fields.String()
    event = fields.String()
    condition = fields.Dict()
    points = fields.Integer()
    cap = fields.Integer(allow_none=True)
    period = fields.String(allow_none=True)
    active = fields.Boolean()
    memo = fields.String(allow_none=True)
    created_at = fields.DateTime()
    created_by = fields.String(allow_none=True)


class RulePage(Schema):
    items = fields.List(fields.Nested(RuleOut))


class RuleChange(Schema):
    active = fields.Boolean(required=True)


class InspectionIn(Schema):
    personal = Whole(0, 100, required=True, metadata={"description": "Personal hygiene (个人卫生), 0-100"})
    household = Whole(0, 100, required=True, metadata={"description": "Household hygiene (家庭卫生), 0-100"})
    public = Whole(0, 100, required=True, metadata={"description": "Public hygiene (公共卫生), 0-100"})


class InspectionOut(Schema):
    id = fields.String()
    community = fields.String()
    household_id = fields.String()
    month = fields.String()
    personal = fields.Integer()
    household = fields.Integer()
    public = fields.Integer()
    passed = fields.Boolean(metadata={"description": "A clean household (清洁户) for the month"})
    inspector = fields.String()
    at = fields.DateTime()


class InspectionPage(Schema):
    items = fields.List(fields.Nested(InspectionOut))


class MonthQuery(Schema):
    month = fields.String(required=True, validate=MONTH)


class ActivityIn(Schema):
    title = fields.String(required=True, validate=validate.Length(1, 200))
    places = Whole(1, activities.MAX_PLACES, required=True)
    starts_at = fields.AwareDateTime(required=True)
    ends_at = fields.AwareDateTime(required=True)

    @validates_schema
    def _in_order(self, data, **kwargs):
        if data["ends_at"] <= data["starts_at"]:
            raise ValidationError("after starts_at", "ends_at")


class ActivityOut(Schema):
    id = fields.String()
    community = fields.String()
    title = fields.String()
    places = fields.Integer()
    taken = fields.Integer()
    left = fields.Integer()
    starts_at = fields.DateTime()
    ends_at = fields.DateTime()
    organiser = fields.String()
    created_at = fields.DateTime()
    attendance_code = fields.String(metadata={"description": "Only for the organiser and the community's admins: "
                                                             "shown at the door"})


class SignupOut(Schema):
    user_id = fields.String()
    signed_up_at = fields.DateTime()
    attended_at = fields.DateTime(allow_none=True)


class SignupPage(Schema):
    items = fields.List(fields.Nested(SignupOut))


class AttendanceIn(Schema):
    code = fields.String(required=True, validate=validate.Length(1, 16))


class AttendanceOut(Schema):
    activity_id = fields.String()
    user_id = fields.String()
    attended_at = fields.DateTime()


class AdjustmentIn(Schema):
    id = fields.String(required=True, validate=TRANSFER_ID, metadata={
        "description": "Chosen by the client (a UUID): sending it again is safe"})
    account_id = Id(required=True, metadata={"description": "A person's or household's account in the community"})
    direction = fields.String(required=True, validate=validate.OneOf((awards.AWARD, awards.DEDUCT)))
    amount = Amount(required=True)
    reason = fields.String(required=True, validate=validate.Length(1, 200))


class AdjustmentOut(Schema):
    id = fields.String()
    community = fields.String()
    account_id = fields.Integer()
    direction = fields.String()
    amount = fields.Integer()
    reason = fields.String()
    state = fields.String(metadata={"description": "done (the points moved), awaiting (a second admin), rejected"})
    requested_by = fields.String()
    requested_at = fields.DateTime()
    decided_by = fields.String(allow_none=True)
    decided_at = fields.DateTime(allow_none=True)
    transfer_id = fields.String(allow_none=True)


class AdjustmentPage(Schema):
    items = fields.List(fields.Nested(AdjustmentOut))
    next_cursor = fields.String(allow_none=True)


class AdjustmentQuery(Page):
    cursor = ADJUSTMENTS.field()
    state = fields.String(validate=validate.OneOf((awards.AWAITING, awards.DONE, awards.REJECTED)))


# --------------------------------------------------------------------------
# scope
# --------------------------------------------------------------------------


def checked(name: str, value: str, rule=PLACE) -> str:
    try:
        rule(value)
    except ValidationError as exc:
        raise Invalid({name: exc.messages}) from None  # type: ignore[dict-item]
    return value


def admin_of(community: str, roles=MOVERS) -> None:
    checked("community", community)
    if not communities(current_principal(), roles)(community):
        raise Forbidden("this community is outside your scope")


def a_uuid(what: str, value: str) -> str:
    if not UUID_TEXT.match(value):
        raise NotFound(what, value)
    return str(uuid.UUID(value))


# --------------------------------------------------------------------------
# settings and rules
# --------------------------------------------------------------------------


@blp.get("/communities/<string:community>/earning-settings")
@require_roles(*READERS)
@blp.response(200, SettingsOut)
def get_settings(community):
    admin_of(community, READERS)
    with runtime().db.transaction() as session:
        return awards.settings_of(session, community)


@blp.put("/communities/<string:community>/earning-settings")
@require_roles(*MOVERS)
@blp.arguments(SettingsIn)
@blp.response(200, SettingsOut)
def put_settings(body, community):
    """Change some of the community's settings (those left out keep their values)."""
    admin_of(community)
    with problems(), runtime().db.transaction() as session:
        return awards.change_settings(session, community, body, by=current_principal().subject)


@blp.post("/communities/<string:community>/award-rules")
@require_roles(*MOVERS)
@blp.arguments(RuleIn)
@blp.response(201, RuleOut)
@blp.alt_response(200, schema=RuleOut, success=True, description="The same id and fields again: that rule")
def add_rule(body, community):
    """A rule: when ``event`` in this community meets ``condition``, ``points`` to whom it names."""
    admin_of(community)
    body["rule_id"] = str(uuid.UUID(body.pop("id")))
    with problems(), runtime().db.transaction() as session:
        view, created = awards.add_rule(session, community=community, by=current_principal().subject, **body)
    return view if created else (view, 200)


@blp.get("/communities/<string:community>/award-rules")
@require_roles(*READERS)
@blp.response(200, RulePage)
def list_rules(community):
    admin_of(community, READERS)
    with runtime().db.transaction() as session:
        return {"items": awards.rules_of(session, community)}


@blp.patch("/award-rules/<string:rule_id>")
@require_roles(*MOVERS)
@blp.arguments(RuleChange)
@blp.response(200, RuleOut)
def change_rule(body, rule_id):
    """Switch a rule off (or on again): rules are kept, as the awards they made name them."""
    rule_id = a_uuid("award rule", rule_id)
    with runtime().db.transaction() as session:
        rule = session.get(AwardRule, rule_id)
        if rule is None:
            raise NotFound("award rule", rule_id)
        admin_of(rule.community)
        awards.set_active(session, rule_id, body["active"])
        return awards.rule_view(rule)


# --------------------------------------------------------------------------
# hygiene inspections
# --------------------------------------------------------------------------


@blp.put("/communities/<string:community>/households/<string:household>/inspections/<string:month>")
@authenticated
@blp.arguments(InspectionIn)
@blp.response(201, InspectionOut)
@blp.alt_response(200, schema=InspectionOut, success=True, description="Recorded already with these results")
def inspect(body, community, household, month):
    """A household's hygiene results for a month (one inspection per household and month)."""
    checked("community", community)
    checked("household", household, HOLDER)
    checked("month", month, MONTH)
    with problems(), runtime().db.transaction() as session:
        view, created = inspections.inspect(session, current_principal(), community=community, household=household,
                                            month=month, personal=body["personal"],
                                            household_score=body["household"], public=body["public"])
    return view if created else (view, 200)


@blp.get("/communities/<string:community>/clean-households")
@authenticated
@blp.arguments(MonthQuery, location="query", unknown=RAISE)
@blp.response(200, InspectionPage)
def clean_households(query, community):
    """The clean households (清洁户) of a month."""
    checked("community", community)
    with runtime().db.transaction() as session:
        return {"items": inspections.clean_households(session, community, query["month"])}


@blp.get("/communities/<string:community>/households/<string:household>/inspections")
@authenticated
@blp.response(200, InspectionPage)
def household_inspections(community, household):
    """A household's inspections, newest month first: its clean-household marks."""
    checked("community", community)
    checked("household", household, HOLDER)
    with runtime().db.transaction() as session:
        return {"items": inspections.marks_of(session, community, household)}


# --------------------------------------------------------------------------
# activities
# --------------------------------------------------------------------------


def activity_or_404(session, activity_id: str) -> Activity:
    row = session.get(Activity, a_uuid("activity", activity_id))
    if row is None:
        raise NotFound("activity", activity_id)
    return row


def organises(activity: Activity) -> bool:
    principal = current_principal()
    return principal.subject == activity.organiser or communities(principal, MOVERS)(activity.community)


@blp.post("/communities/<string:community>/activities")
@require_roles(*MOVERS)
@blp.arguments(ActivityIn)
@blp.response(201, ActivityOut)
def publish_activity(body, community):
    """Publish an activity with places; the answer has the attendance code for the door."""
    admin_of(community)
    with problems(), runtime().db.transaction() as session:
        row = activities.publish(session, community=community, organiser=current_principal().subject, **body)
        return activities.view(row) | {"attendance_code": row.code}


@blp.get("/activities/<string:activity_id>")
@authenticated
@blp.response(200, ActivityOut)
def get_activity(activity_id):
    with runtime().db.transaction() as session:
        row = activity_or_404(session, activity_id)
        return activities.view(row) | ({"attendance_code": row.code} if organises(row) else {})


@blp.get("/activities/<string:activity_id>/signups")
@authenticated
@blp.response(200, SignupPage)
def list_signups(activity_id):
    """Who signed up (接龙), in order, and who attended: for the organiser and admins."""
    with runtime().db.transaction() as session:
        row = activity_or_404(session, activity_id)
        if not organises(row):
            raise Forbidden("only the organiser and the community's admins see who signed up")
        return {"items": activities.signups_of(session, row.id)}


@blp.post("/activities/<string:activity_id>/signups")
@authenticated
@blp.response(201, ActivityOut)
@blp.alt_response(200, schema=ActivityOut, success=True, description="Signed up already: nothing changed")
def sign_up(activity_id):
    """Take a place (接龙报名); refused when none is left."""
    with problems(), runtime().db.transaction() as session:
        row = activity_or_404(session, activity_id)
        view, created = activities.sign_up(session, row, current_principal().subject)
    return view if created else (view, 200)


@blp.post("/activities/<string:activity_id>/attendance")
@authenticated
@blp.arguments(AttendanceIn)
@blp.response(201, AttendanceOut)
def attend(body, activity_id):
    """I am here: the code shown at the door, during the activity, by someone who signed up."""
    with problems(), runtime().db.transaction() as session:
        row = activity_or_404(session, activity_id)
        done = activities.attend(session, row, current_principal().subject, body["code"])
    if done == activities.WRONG:  # counted (committed above); nothing else changed
        raise Invalid({"code": ["not this activity's code"]})
    return done


# --------------------------------------------------------------------------
# manual awards and deductions
# --------------------------------------------------------------------------


@blp.post("/communities/<string:community>/adjustments")
@require_roles(*MOVERS)
@blp.arguments(AdjustmentIn)
@blp.response(201, AdjustmentOut)
@blp.alt_response(200, schema=AdjustmentOut, success=True, description="The same id and fields again")
def adjust(body, community):
    """Award or deduct points by hand, with a reason. Up to the community's threshold the
    points move at once (``done``); above it the adjustment is ``awaiting`` a second admin."""
    admin_of(community)
    body["adjustment_id"] = str(uuid.UUID(body.pop("id")))
    with problems(), runtime().db.transaction() as session:
        view, created = awards.adjust(session, current_principal(), community=community, **body)
    return view if created else (view, 200)


@blp.get("/communities/<string:community>/adjustments")
@require_roles(*READERS)
@blp.arguments(AdjustmentQuery, location="query", unknown=RAISE)
@blp.response(200, AdjustmentPage)
def list_adjustments(query, community):
    """The community's adjustments, newest first; ``state=awaiting``: those a second admin
    must decide."""
    admin_of(community, READERS)
    stmt = select(Adjustment).where(Adjustment.community == community)
    if "state" in query:
        stmt = stmt.where(Adjustment.state == query["state"])
    with runtime().db.transaction() as session:
        rows, cursor = paginate(session, stmt, [Adjustment.requested_at, Adjustment.id], query.get("cursor"),
                                query["limit"], ADJUSTMENTS, descending=True)
        return {"items": [awards.adjustment_view(r) for r in rows], "next_cursor": cursor}


@blp.get("/adjustments/<string:adjustment_id>")
@require_roles(*READERS)
@blp.response(200, AdjustmentOut)
def get_adjustment(adjustment_id):
    with runtime().db.transaction() as session:
        row = session.get(Adjustment, a_uuid("adjustment", adjustment_id))
        if row is None:
            raise NotFound("adjustment", adjustment_id)
        admin_of(row.community, READERS)
        return awards.adjustment_view(row)


def decide(adjustment_id: str, approve: bool) -> dict:
    adjustment_id = a_uuid("adjustment", adjustment_id)
    with problems(), runtime().db.transaction() as session:
        row = session.get(Adjustment, adjustment_id)
        if row is None:
            raise NotFound("adjustment", adjustment_id)
        admin_of(row.community)
        view = awards.decide(session, current_principal(), adjustment_id, approve=approve)
        assert view is not None
        return view


@blp.post("/adjustments/<string:adjustment_id>/approval")
@require_roles(*MOVERS)
@blp.response(200, AdjustmentOut)
def approve(adjustment_id):
    """A second admin (not the one who asked) approves: the points move."""
    return decide(adjustment_id, True)


@blp.post("/adjustments/<string:adjustment_id>/rejection")
@require_roles(*MOVERS)
@blp.response(200, AdjustmentOut)
def reject(adjustment_id):
    """A second admin rejects: nothing moves."""
    return decide(adjustment_id, False)
