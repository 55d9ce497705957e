"""Events notify publishes."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from gridkit.events import Catalogue

catalogue = Catalogue("notify")

CHANNELS = ("inbox", "email", "sms", "webhook")


class DeliveryFailed(Schema):
    delivery_id = fields.String(required=True)
    recipient_id = fields.String(required=True)
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    template = fields.String(required=True)
    attempts = fields.Integer(required=True)
    reason = fields.String(required=True)
    at = fields.DateTime(required=True)


DELIVERY_FAILED = catalogue.declare(
    "notify.delivery.failed", version=1, schema=DeliveryFailed,
    description="A notice could not be delivered over a channel after every retry.")
