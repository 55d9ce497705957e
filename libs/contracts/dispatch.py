"""Events dispatch publishes: a case's life as staff drive it.

Every case event names the case, its petition and the people concerned by
id (who was offered the case, who claimed it, which supervisors must hear of
a missed deadline), so intake can write the resident's timeline and notify
can decide whom to tell without a staffing model of its own. No personal
data beyond user ids.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from gridkit.events import Catalogue

catalogue = Catalogue("dispatch")

LEVELS = ("grid", "community", "street", "county")
STEPS = ("approve", "claim", "handle", "report_in", "review")


class CaseEvent(Schema):
    case_id = fields.String(required=True)
    petition_id = fields.String(required=True)
    reporter_id = fields.String(required=True, metadata={"description": "Whom the resident-facing timeline is for"})
    network = fields.String(required=True)
    grid_id = fields.Integer(allow_none=True, metadata={"description": "Current grid (null: county catch-all queue)"})
    level = fields.String(required=True, validate=validate.OneOf(LEVELS),
                          metadata={"description": "Rung of the ladder the case sits on"})
    at = fields.DateTime(required=True)


class CaseOpened(CaseEvent):
    category = fields.String(required=True)
    catch_all = fields.Boolean(required=True, metadata={
        "description": "No grid of the network covers the place: the county's catch-all queue has it"})
    needs_approval = fields.Boolean(required=True, metadata={"description": "The community approves before offering (审批)"})
    approvers = fields.List(fields.String(), required=True)


class CaseAssigned(CaseEvent):
    offered_to = fields.List(fields.String(), required=True, metadata={
        "description": "User ids the case is offered to; the first claim wins (秒认领)"})
    claim_due = fields.DateTime(required=True)
    by = fields.String(allow_none=True, metadata={"description": "Approving admin; null when automatic"})


class CaseClaimed(CaseEvent):
    by = fields.String(required=True)
    claim_seconds = fields.Float(required=True)
    handle_due = fields.DateTime(required=True)


class CaseProgressed(CaseEvent):
    by = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(
        ("note", "photo", "extension_requested", "extension_approved", "extension_refused", "returned")))
    text = fields.String(allow_none=True, metadata={"description": "Staff's words for the timeline"})
    handle_due = fields.DateTime(allow_none=True)


class CaseEscalated(CaseEvent):
    from_level = fields.String(required=True, validate=validate.OneOf(LEVELS))
    reason = fields.String(required=True, validate=validate.OneOf(("claim_deadline", "handle_deadline", "manual")),
                           metadata={"description": "manual: a supervisor flagged it for supervision (督办)"})
    division_code = fields.String(allow_none=True)
    offered_to = fields.List(fields.String(), required=True)
    claim_due = fields.DateTime(required=True)
    # 督办 (reason manual) only:
    by = fields.String(allow_none=True, metadata={"description": "The supervisor who flagged it (manual)"})
    text = fields.String(allow_none=True, metadata={"description": "The supervisor's reason, for staff (manual)"})
    due = fields.DateTime(allow_none=True, metadata={"description": "The deadline the supervisor set (manual)"})
    notify = fields.List(fields.String(), metadata={
        "description": "Whom a supervision concerns besides those offered: the handler (or the dispatchers "
                       "of an unclaimed case) and the supervisors at the new level (manual)"})


class CaseHandedBack(CaseEvent):
    handler = fields.String(allow_none=True, metadata={
        "description": "The handler who left (null: the case was only offered, to people who all left)"})
    reason = fields.String(required=True, validate=validate.OneOf(("handler_left", "offers_withdrawn")))
    offered_to = fields.List(fields.String(), required=True, metadata={
        "description": "Who now has it to claim or reassign: the grid head, or the next rung up"})
    claim_due = fields.DateTime(required=True)


class CaseReassigned(CaseEvent):
    by = fields.String(required=True, metadata={"description": "The supervisor who moved it"})
    from_handler = fields.String(allow_none=True, metadata={"description": "Null when nobody held it"})
    to_handler = fields.String(required=True)
    reason = fields.String(required=True, metadata={"description": "The supervisor's words, for staff"})
    handle_due = fields.DateTime(required=True)


class CaseUnattended(CaseEvent):
    reason = fields.String(required=True, validate=validate.OneOf(("nobody_to_offer", "no_approver")))
    catch_all = fields.Boolean(required=True)
    notify = fields.List(fields.String(), required=True, metadata={
        "description": "Who is alerted: the county admins, or the sysadmins when there is none"})


class CaseWhistled(CaseEvent):
    whistle_id = fields.String(required=True)
    departments = fields.List(fields.String(), required=True)
    report_in_due = fields.DateTime(required=True)
    by = fields.String(required=True)


class CaseReportedIn(CaseEvent):
    whistle_id = fields.String(required=True)
    department = fields.String(required=True)
    by = fields.String(required=True)
    late = fields.Boolean(required=True)


class CaseResolved(CaseEvent):
    by = fields.String(required=True)
    result = fields.String(required=True, metadata={"description": "What was done, for the resident"})


class CaseReopened(CaseEvent):
    reason = fields.String(required=True)


class CaseClosed(CaseEvent):
    outcome = fields.String(required=True, validate=validate.OneOf(
        ("rated", "rating_timeout", "withdrawn", "merged", "on_spot")))
    rating = fields.Integer(allow_none=True)
    community = fields.String(allow_none=True, load_default=None, metadata={
        "description": "The case's community (division code; null when no community covers it): points "
                       "awards the reporter there"})


class DeadlineEvent(CaseEvent):
    step = fields.String(required=True, validate=validate.OneOf(STEPS))
    due = fields.DateTime(required=True)
    department = fields.String(allow_none=True)
    notify = fields.List(fields.String(), required=True, metadata={
        "description": "Whom to tell: the holder and, when missed, the supervisors one rung up"})


CASE_OPENED = catalogue.declare("dispatch.case.opened", version=1, schema=CaseOpened,
                                description="A case was opened for a petition and routed to a grid (or the catch-all queue).")
CASE_ASSIGNED = catalogue.declare("dispatch.case.assigned", version=1, schema=CaseAssigned,
                                  description="The case is offered to a grid's workers (or a rung's staff) to claim.")
CASE_CLAIMED = catalogue.declare("dispatch.case.claimed", version=1, schema=CaseClaimed,
                                 description="A worker claimed the case; the first claim wins.")
CASE_PROGRESSED = catalogue.declare("dispatch.case.progressed", version=1, schema=CaseProgressed,
                                    description="Handling steps: notes, photos, extension requests and decisions, returns.")
CASE_ESCALATED = catalogue.declare("dispatch.case.escalated", version=1, schema=CaseEscalated,
                                   description="The case climbed the ladder grid → community → street → county: "
                                   "a missed deadline, or a supervisor flagged it (督办, reason manual).")
CASE_HANDED_BACK = catalogue.declare(
    "dispatch.case.handed_back", version=1, schema=CaseHandedBack,
    description="The people who had the case left (account disabled): it is offered to its grid head "
    "(or the next rung up) to claim or reassign.")
CASE_REASSIGNED = catalogue.declare(
    "dispatch.case.reassigned", version=1, schema=CaseReassigned,
    description="A supervisor moved the case to another worker, with a reason.")
CASE_UNATTENDED = catalogue.declare(
    "dispatch.case.unattended", version=1, schema=CaseUnattended,
    description="Nobody can take the case (nobody to offer it to, nobody to approve it): an alert "
    "instead of a silent wait; it is offered as soon as someone is staffed or granted.")
CASE_WHISTLED = catalogue.declare("dispatch.case.whistled", version=1, schema=CaseWhistled,
                                  description="A street/community admin blew the whistle (吹哨) for departments.")
CASE_REPORTED_IN = catalogue.declare("dispatch.case.reported_in", version=1, schema=CaseReportedIn,
                                     description="A whistled department reported in (报到).")
CASE_RESOLVED = catalogue.declare("dispatch.case.resolved", version=1, schema=CaseResolved,
                                  description="The case was resolved; the resident may now rate it.")
CASE_REOPENED = catalogue.declare("dispatch.case.reopened", version=1, schema=CaseReopened,
                                  description="Rework (不满意重办): the resolved case is back with its handler.")
CASE_CLOSED = catalogue.declare("dispatch.case.closed", version=1, schema=CaseClosed,
                                description="The case is archived (rated, rating timed out, withdrawn, merged, on the spot).")
DEADLINE_APPROACHING = catalogue.declare("dispatch.deadline.approaching", version=1, schema=DeadlineEvent,
                                         description="80 % of a step's time is gone (yellow light).")
DEADLINE_MISSED = catalogue.declare("dispatch.deadline.missed", version=1, schema=DeadlineEvent,
                                    description="A step's deadline passed (red light); supervisors are named.")
