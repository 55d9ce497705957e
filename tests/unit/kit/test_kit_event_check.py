"""The publisher's contract check (gridkit.events.wire_check) agrees with marshmallow's
own validation on every declared event of every service, field by field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from gridkit import registry
from gridkit.events import REGISTRY
from gridkit.schemas import plain_dump, wire_check

# Every service's events declare themselves on import.
for _module in registry.SERVICES:
    __import__(f"{_module}.events")

EVENT_TYPES = sorted(REGISTRY.values(), key=lambda e: e.type)


def sample(field: fields.Field):
    """A value of the wire form that the field's validators accept."""
    for v in field.validators:
        if isinstance(v, validate.OneOf):
            return next(iter(v.choices))
        if isinstance(v, validate.Range):
            return v.min if v.min is not None else v.max
    if isinstance(field, fields.Nested):
        return wire_sample(field.schema)
    if isinstance(field, fields.List):
        return [sample(field.inner)]
    return {fields.String: "x", fields.DateTime: datetime(2026, 11, 30, tzinfo=UTC).isoformat(),
            fields.Integer: 7, fields.Float: 1.5, fields.Boolean: True, fields.Dict: {"k": 1}}[type(field)]


def wire_sample(schema: Schema) -> dict:
    return {f.data_key or name: sample(f) for name, f in schema.fields.items()}


def mutations(schema: Schema):
    """(what, broken wire form) pairs a buggy publisher could produce through a dump."""
    good = wire_sample(schema)
    for name, f in schema.fields.items():
        key = f.data_key or name
        yield f"{key} missing", {k: v for k, v in good.items() if k != key}
        yield f"{key} null", good | {key: None}
        for v in f.validators:
            if isinstance(v, validate.OneOf):
                yield f"{key} not one of", good | {key: "no-such-choice"}
            if isinstance(v, validate.Range) and v.max is not None:
                yield f"{key} above its range", good | {key: v.max + 1}
        if isinstance(f, fields.Nested):
            for what, inner in mutations(f.schema):
                yield f"{key}.{what}", good | {key: inner}


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda e: e.type)
def test_a_good_event_passes_and_every_broken_field_is_named_as_marshmallow_names_it(event_type):
    schema = event_type.schema()
    check = wire_check(schema)
    assert check(wire_sample(schema)) == {} == schema.validate(wire_sample(schema))
    for what, broken in mutations(schema):
        assert set(check(broken)) == set(schema.validate(broken)), what


def test_the_check_is_compiled_for_every_declared_event():
    compiled = [e.type for e in EVENT_TYPES if wire_check(e.schema()).__name__ == "check"]
    assert compiled == [e.type for e in EVENT_TYPES]


def test_a_schema_with_its_own_validator_is_checked_by_marshmallow():
    class Window(Schema):
        opens = fields.Integer(required=True)
        closes = fields.Integer(required=True)

        @validates_schema
        def in_order(self, data, **kwargs):
            if data["opens"] > data["closes"]:
                raise ValidationError("closes before it opens")

    check = wire_check(Window())
    assert check({"opens": 1, "closes": 5}) == {}
    assert check({"opens": 5, "closes": 1})  # only marshmallow knows this rule


def test_wrong_wire_types_are_refused():
    class Thing(Schema):
        count = fields.Integer(required=True)
        share = fields.Float(required=True)
        tags = fields.List(fields.String(), required=True)

    check = wire_check(Thing())
    assert check({"count": 1, "share": 2, "tags": ["a"]}) == {}
    assert set(check({"count": True, "share": "2", "tags": ["a", 3]})) == {"count", "share", "tags"}


# --- the publisher's dump ------------------------------------------------------------------

def plain(field: fields.Field):
    """A value as publishers hand it over: Python types, datetimes as datetimes."""
    if isinstance(field, fields.DateTime):
        return datetime(2026, 11, 30, 8, 30, 15, 123456, tzinfo=UTC)
    if isinstance(field, fields.Nested):
        return plain_sample(field.schema)
    if isinstance(field, fields.List):
        return [plain(field.inner), None] if field.inner.allow_none else [plain(field.inner)]
    if isinstance(field, fields.Float):
        return 3  # an int where a float is declared: dumped as 3.0
    return sample(field)


def plain_sample(schema: Schema) -> dict:
    return {name: plain(f) for name, f in schema.fields.items()}


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda e: e.type)
def test_the_plain_dump_gives_what_marshmallow_gives(event_type):
    schema = event_type.schema()
    dump = plain_dump(schema)
    data = plain_sample(schema)
    assert dump(data) == schema.dump(data)
    for name in schema.fields:  # a field left out, or null
        for partial in ({k: v for k, v in data.items() if k != name}, data | {name: None}):
            assert dump(partial) == schema.dump(partial), name


def test_data_that_is_not_plain_is_left_to_marshmallow():
    from decimal import Decimal

    class Reading(Schema):
        value = fields.Float(required=True)
        at = fields.DateTime(required=True)

    dump = plain_dump(Reading())
    now = datetime(2026, 11, 30, tzinfo=UTC)
    assert dump({"value": 1.5, "at": now}) == {"value": 1.5, "at": now.isoformat()}
    assert dump({"value": Decimal("1.5"), "at": now}) is None
    assert dump({"value": 1.5, "at": now.isoformat()}) is None
    assert dump(object()) is None
