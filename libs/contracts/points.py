"""Events points publishes: what happened to points in the ledger.

A transfer moves points from one account to another. Each event names both
accounts with their kind, community and holder (a user id for a person's
account, a household or supermarket id), so notify can tell the people
concerned without a ledger of its own. No personal data beyond ids.

* ``points.transfer.posted``: points moved for good — a single-phase transfer
  (an award, a correction) or the posting of a hold (a redemption handed over).
* ``points.transfer.pending``: points are held (a redemption waiting for its
  hand-over): they stay in the debit account but cannot be spent.
* ``points.transfer.voided``: a hold was released: called off, or timed out
  (``reason: expired``).
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from gridkit.events import Catalogue

catalogue = Catalogue("points")

ACCOUNT_KINDS = ("person", "household", "issuing", "supermarket", "expiry")
VOID_REASONS = ("voided", "expired")


class Account(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(ACCOUNT_KINDS))
    community = fields.String(required=True, metadata={"description": "Division code of the community"})
    holder = fields.String(allow_none=True, metadata={
        "description": "Whose it is: a user id (person), household id, supermarket id; null for a "
                       "community's issuing pool or expiry sink"})
    balance = fields.Integer(required=True, metadata={"description": "Posted balance after the transfer"})
    available = fields.Integer(required=True, metadata={
        "description": "What may still be spent after the transfer: the balance less what is held"})


class TransferEvent(Schema):
    transfer_id = fields.String(required=True, metadata={"description": "The client-chosen id (UUID)"})
    code = fields.String(required=True, metadata={"description": "What for: award, redemption, adjustment, …"})
    amount = fields.Integer(required=True, validate=validate.Range(min=1))
    debit = fields.Nested(Account, required=True, metadata={"description": "The account points leave"})
    credit = fields.Nested(Account, required=True, metadata={"description": "The account points reach"})
    source = fields.String(allow_none=True, metadata={
        "description": "What caused it (a source event's id): each source moves points at most once"})
    at = fields.DateTime(required=True)


class TransferPosted(TransferEvent):
    pending_id = fields.String(allow_none=True, metadata={
        "description": "The hold this posts (null: a single-phase transfer)"})


class TransferPending(TransferEvent):
    expires_at = fields.DateTime(allow_none=True, metadata={
        "description": "When the hold is released by itself unless posted (null: never)"})


class TransferVoided(TransferEvent):
    pending_id = fields.String(required=True, metadata={"description": "The hold released"})
    reason = fields.String(required=True, validate=validate.OneOf(VOID_REASONS))


TRANSFER_POSTED = catalogue.declare(
    "points.transfer.posted", version=1, schema=TransferPosted,
    description="Points moved for good: an award, a correction, or a hold posted (a redemption handed over).")
TRANSFER_PENDING = catalogue.declare(
    "points.transfer.pending", version=1, schema=TransferPending,
    description="Points are held in the debit account until the hold is posted or voided (a redemption "
    "waiting for its hand-over).")
TRANSFER_VOIDED = catalogue.declare(
    "points.transfer.voided", version=1, schema=TransferVoided,
    description="A hold was released: called off (voided) or past its timeout (expired).")


# --------------------------------------------------------------------------
# Earning: the facts that award points, and the notices for the people who earn
# --------------------------------------------------------------------------


class HouseholdInspected(Schema):
    inspection_id = fields.String(required=True)
    community = fields.String(required=True)
    household_id = fields.String(required=True)
    month = fields.String(required=True, metadata={"description": "YYYY-MM, local time"})
    personal = fields.Integer(required=True, metadata={"description": "Personal hygiene, 0-100"})
    household = fields.Integer(required=True, metadata={"description": "Household hygiene, 0-100"})
    public = fields.Integer(required=True, metadata={"description": "Public hygiene, 0-100"})
    passed = fields.Boolean(required=True, metadata={"description": "A clean household (清洁户) this month"})
    inspector = fields.String(required=True)
    at = fields.DateTime(required=True)


class ActivityAttended(Schema):
    activity_id = fields.String(required=True)
    community = fields.String(required=True)
    user_id = fields.String(required=True)
    at = fields.DateTime(required=True)


class PointsNotice(Schema):
    community = fields.String(required=True)
    account_id = fields.Integer(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(("person", "household")))
    holder = fields.String(required=True, metadata={"description": "A user id or household id"})
    amount = fields.Integer(required=True, validate=validate.Range(min=1))
    balance = fields.Integer(required=True, metadata={"description": "The account's balance after it"})
    notify = fields.List(fields.String(), required=True, metadata={
        "description": "Whom to tell: the person, or the household's members points knows of"})
    at = fields.DateTime(required=True)


class AwardGranted(PointsNotice):
    transfer_id = fields.String(required=True)
    reason = fields.String(required=True, metadata={
        "description": "What earned it: petition, activity, hygiene, adjustment (an admin's award), service_order, …"})
    rule_id = fields.String(allow_none=True, metadata={"description": "The award rule (null: a manual award)"})


class AccountExpired(PointsNotice):
    transfer_id = fields.String(required=True)
    earned_before = fields.DateTime(required=True, metadata={
        "description": "Points earned before this moment and not spent are the ones that expired"})


HOUSEHOLD_INSPECTED = catalogue.declare(
    "points.household.inspected", version=1, schema=HouseholdInspected,
    description="An inspector recorded a household's monthly hygiene results (清洁户 when passed); "
    "award rules on it give the points.")
ACTIVITY_ATTENDED = catalogue.declare(
    "points.activity.attended", version=1, schema=ActivityAttended,
    description="A signed-up resident attended a community activity with the code shown at the door.")
AWARD_GRANTED = catalogue.declare(
    "points.award.granted", version=1, schema=AwardGranted,
    description="Points were awarded to a person or a household (an award rule, or an admin's manual award).")
ACCOUNT_EXPIRED = catalogue.declare(
    "points.account.expired", version=1, schema=AccountExpired,
    description="Points earned more than the community's N months ago and not spent moved to its expiry account.")


# --------------------------------------------------------------------------
# supermarkets (积分超市): a resident's redemption, from its hold to its end
# --------------------------------------------------------------------------

REDEMPTION_ENDS = ("handed_over", "cancelled", "expired")


class RedemptionEvent(Schema):
    redemption_id = fields.String(required=True, metadata={
        "description": "The redemption's id, also the id of its hold in the ledger"})
    supermarket_id = fields.Integer(required=True)
    supermarket = fields.String(required=True, metadata={"description": "The supermarket's name"})
    community = fields.String(required=True, metadata={"description": "Division code of the community"})
    resident = fields.String(required=True, metadata={"description": "The user id of who redeems"})
    amount = fields.Integer(required=True, validate=validate.Range(min=1), metadata={
        "description": "Points the basket costs"})
    pieces = fields.Integer(required=True, validate=validate.Range(min=1), metadata={
        "description": "Items in the basket, counting each piece"})
    expires_at = fields.DateTime(required=True, metadata={
        "description": "When the hold is released unless the items were handed over"})
    at = fields.DateTime(required=True)


class RedemptionEnded(RedemptionEvent):
    by = fields.String(allow_none=True, metadata={
        "description": "Who handed over or cancelled (user id); null when the hold expired"})


REDEMPTION_HELD = catalogue.declare(
    "points.redemption.held", version=1, schema=RedemptionEvent,
    description="A resident picked items in a points supermarket: the points are held and the items reserved "
    "until the keeper hands them over against the resident's code, or the hold expires.")
REDEMPTION_HANDED_OVER = catalogue.declare(
    "points.redemption.handed_over", version=1, schema=RedemptionEnded,
    description="The keeper handed the items over against the resident's code: the held points are spent.")
REDEMPTION_CANCELLED = catalogue.declare(
    "points.redemption.cancelled", version=1, schema=RedemptionEnded,
    description="The resident or the keeper called the redemption off: points and items return.")
REDEMPTION_EXPIRED = catalogue.declare(
    "points.redemption.expired", version=1, schema=RedemptionEnded,
    description="Nobody came for the items before the hold's timeout: points and items return.")
