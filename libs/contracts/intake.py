"""Events intake publishes: a petition's life as the resident drives it.

They carry ids, the category and the place — never the resident's name,
phone or the free-text description (which may hold personal data); staff
read those from intake's API, masked by role.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from gridkit.events import Catalogue

catalogue = Catalogue("intake")

CHANNELS = ("app", "hotline", "mailbox", "window", "patrol")


class Place(Schema):
    lon = fields.Float(required=True, validate=validate.Range(-180, 180))
    lat = fields.Float(required=True, validate=validate.Range(-90, 90))
    building_id = fields.Integer(allow_none=True)


class PetitionSubmitted(Schema):
    petition_id = fields.String(required=True)
    category = fields.String(required=True, metadata={"description": "Category code, e.g. water_leak"})
    network = fields.String(required=True, metadata={"description": "The grid network that handles the category"})
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    place = fields.Nested(Place, required=True)
    reporter_id = fields.String(required=True, metadata={"description": "identity user id of the resident"})
    submitted_by = fields.String(allow_none=True, metadata={
        "description": "Operator or grid worker who entered it on the resident's behalf"})
    anonymous = fields.Boolean(required=True, metadata={"description": "Hide the reporter from staff"})
    claim_minutes = fields.Integer(required=True, metadata={"description": "Category's claim deadline"})
    handle_hours = fields.Integer(required=True, metadata={"description": "Category's handling deadline"})
    handle_minutes = fields.Integer(allow_none=True, load_default=None, metadata={
        "description": "Category's handling deadline in minutes (urgent categories); "
        "when present it wins over handle_hours"})
    working_hours = fields.Boolean(required=True, metadata={
        "description": "Deadlines count working hours (09:00–18:00 local time on working days: the national "
        "calendar with its holidays and make-up days, plus the county's own days) rather than calendar hours"})
    closed_on_spot = fields.Boolean(required=True, metadata={
        "description": "A patrol note (随手记) the grid worker already handled on the spot"})
    photos = fields.Integer(required=True)
    submitted_at = fields.DateTime(required=True)


class PetitionWithdrawn(Schema):
    petition_id = fields.String(required=True)
    reporter_id = fields.String(required=True)
    at = fields.DateTime(required=True)


class PetitionRated(Schema):
    petition_id = fields.String(required=True)
    reporter_id = fields.String(required=True)
    rating = fields.Integer(required=True, validate=validate.Range(1, 5))
    at = fields.DateTime(required=True)


class PetitionReopened(Schema):
    petition_id = fields.String(required=True)
    reporter_id = fields.String(required=True)
    reason = fields.String(required=True, metadata={"description": "Why the resident asks for rework (不满意重办)"})
    at = fields.DateTime(required=True)


class PetitionMerged(Schema):
    petition_id = fields.String(required=True, metadata={"description": "The duplicate, now closed"})
    into_petition_id = fields.String(required=True, metadata={"description": "The kept petition"})
    reporter_id = fields.String(required=True, metadata={"description": "Reporter of the duplicate; now follows the kept case"})
    by = fields.String(required=True)
    at = fields.DateTime(required=True)


class PetitionFollowed(Schema):
    petition_id = fields.String(required=True)
    follower_id = fields.String(required=True, metadata={"description": "A resident who said 'me too'"})
    at = fields.DateTime(required=True)


PETITION_SUBMITTED = catalogue.declare(
    "intake.petition.submitted", version=1, schema=PetitionSubmitted,
    description="A resident (or someone on their behalf) reported a problem; dispatch opens one case for it.")
PETITION_WITHDRAWN = catalogue.declare(
    "intake.petition.withdrawn", version=1, schema=PetitionWithdrawn,
    description="The reporter withdrew the petition before anyone claimed it.")
PETITION_RATED = catalogue.declare(
    "intake.petition.rated", version=1, schema=PetitionRated,
    description="The reporter rated the resolved petition (1–5).")
PETITION_REOPENED = catalogue.declare(
    "intake.petition.reopened", version=1, schema=PetitionReopened,
    description="The reporter, unsatisfied (rating ≤ 2), asked for rework within 7 days.")
PETITION_MERGED = catalogue.declare(
    "intake.petition.merged", version=1, schema=PetitionMerged,
    description="Staff merged a duplicate into a kept petition; its reporter follows the kept case.")
PETITION_FOLLOWED = catalogue.declare(
    "intake.petition.followed", version=1, schema=PetitionFollowed,
    description="Another resident said 'me too' and follows the petition.")
