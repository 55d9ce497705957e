"""Compiled loads (gridkit.schemas.plain_load) answer exactly as marshmallow does, or
leave the answer to marshmallow: for every schema of every service's HTTP API and of
every declared event (what consumers load), on good bodies, on each field broken in
each way a client can break it, and on random JSON put in place of each field."""

from __future__ import annotations

import importlib
import inspect
import math
import pkgutil

import marshmallow
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import RAISE, ValidationError, fields, validate, validates_schema

from gridkit import registry, schemas
from gridkit.schemas import Schema, plain_dump, plain_load


def api_modules() -> list[str]:
    """Every registered service's ``api`` module, or the modules of its ``api`` package."""
    names = []
    for service in registry.SERVICES:
        api = importlib.import_module(f"{service}.api")
        names.append(api.__name__)
        if hasattr(api, "__path__"):
            names += [f"{api.__name__}.{m.name}" for m in pkgutil.iter_modules(api.__path__)]
    return names


MODULES = api_modules()


def api_schemas() -> list[type[marshmallow.Schema]]:
    found = {}
    for name in MODULES:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if inspect.isclass(value) and issubclass(value, marshmallow.Schema) \
                    and value.__module__ == module.__name__:
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return [found[k] for k in sorted(found)]


def event_schemas() -> list[type[marshmallow.Schema]]:
    from gridkit.events import REGISTRY

    for service in registry.SERVICES:
        importlib.import_module(f"{service}.events")  # each declares its events on import
    return sorted({event.schema for event in REGISTRY.values()}, key=lambda s: f"{s.__module__}.{s.__qualname__}")


SCHEMAS = api_schemas()
LOADED = SCHEMAS + [s for s in event_schemas() if s not in SCHEMAS]
CANDIDATES = {
    fields.String: ["x", "13800138000", "app", "a-1", "abcdefghij", "2026-11-30"],
    fields.Integer: [7, 1, 0, 50, 1000],
    fields.Float: [100.25, 25.6, 1.5, 0.0],
    fields.Boolean: [True, False],
    fields.DateTime: ["2026-11-30T08:15:00.123456+08:00", "2026-11-30T08:15:00+00:00", "2026-11-30 08:15"],
    fields.Dict: [{"type": "Point", "coordinates": [100.25, 25.6]}, {}],
}


def good_value(field: fields.Field):
    """A JSON value marshmallow's field accepts, or marshmallow.missing."""
    if isinstance(field, fields.Nested) and not field.many:
        value = good_body(field.schema)
        candidates = [value]
    elif isinstance(field, fields.List):
        inner = good_value(field.inner)
        candidates = [[] if inner is marshmallow.missing else [inner], []]
    else:
        candidates = [c for v in field.validators if isinstance(v, validate.OneOf) for c in v.choices]
        candidates += [r for v in field.validators if isinstance(v, validate.Range)
                       for r in (v.min, v.max) if r is not None]
        candidates += CANDIDATES.get(type(field), [])
    for value in candidates:
        try:
            field.deserialize(value)
        except ValidationError:
            continue
        return value
    return marshmallow.missing


def good_body(schema: marshmallow.Schema) -> dict:
    body = {}
    for name, field in schema.load_fields.items():
        value = good_value(field)
        if value is not marshmallow.missing:
            body[field.data_key or name] = value
    return body


def marshmallow_load(schema, data):
    try:
        return marshmallow.Schema.load(schema, data)
    except ValidationError as exc:
        return ("refused", exc.messages)


def assert_agrees(schema, data):
    fast = plain_load(schema)(data)
    if fast is not None:
        assert fast == marshmallow_load(schema, data), data


BROKEN = [None, True, 1, -1, 2**70, 1.5, math.nan, math.inf, "", "x" * 300, "NUL\x00", [], [1], {}, {"k": 1},
          "2026-11-30", "2026-11-30T25:00:00", "2026-11-30T08:15:00Z", "30/11/2026"]


def broken_bodies(schema: marshmallow.Schema):
    good = good_body(schema)
    yield good
    yield good | {"no_such_field": 1}
    yield []
    for name, field in schema.load_fields.items():
        key = field.data_key or name
        yield {k: v for k, v in good.items() if k != key}
        for value in BROKEN:
            yield good | {key: value}
        if isinstance(field, fields.Nested) and not field.many:
            for inner in broken_bodies(field.schema):
                yield good | {key: inner}


@pytest.mark.parametrize("schema_class", LOADED, ids=lambda s: f"{s.__module__}.{s.__name__}")
def test_compiled_load_agrees_with_marshmallow_on_good_and_broken_bodies(schema_class):
    schema = schema_class()
    for body in broken_bodies(schema):
        assert_agrees(schema, body)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=6)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_compiled_load_agrees_with_marshmallow_on_random_values(data):
    schema = data.draw(st.sampled_from(LOADED))()
    body = good_body(schema)
    if schema.load_fields:
        name, field = data.draw(st.sampled_from(sorted(schema.load_fields.items())))
        body[field.data_key or name] = data.draw(JSON)
    assert_agrees(schema, body)


def test_the_busy_routes_bodies_are_compiled_and_used():
    from intake.api import PetitionIn

    schema = PetitionIn()
    body = {"category": "noise", "description": "楼上装修太吵", "place": {"lon": 100.25, "lat": 25.65},
            "contact": {"phone": "13800138000"}}
    loaded = plain_load(schema)(body)
    assert loaded is not None
    assert loaded == marshmallow_load(schema, body)
    assert loaded["channel"] == "app" and loaded["photos"] == [] and loaded["separate"] is False
    # refused by its schema validator (point or building): marshmallow gives the error
    assert plain_load(schema)(body | {"place": {"lon": 100.25}}) is None
    with pytest.raises(ValidationError) as refused:
        schema.load(body | {"place": {"lon": 100.25}})
    assert "place" in refused.value.messages


def test_every_event_is_loaded_by_the_compiled_path():
    # Consumers load every event they take: times and GeoJSON included, none is marshmallow's.
    from gridkit.events import REGISTRY
    from gridkit.schemas import _compile_load, _Unknown

    marshmallows = []
    for event in REGISTRY.values():
        try:
            _compile_load(event._schema, None)
        except _Unknown:
            marshmallows.append(event.type)
    assert REGISTRY and marshmallows == []


def test_a_time_loads_as_marshmallow_loads_it():
    from datetime import datetime, timedelta, timezone

    class When(Schema):
        at = fields.DateTime(required=True)
        shape = fields.Dict()

    load = plain_load(When())
    assert load({"at": "2026-11-30T08:15:00.25+08:00"}) == {
        "at": datetime(2026, 11, 30, 8, 15, 0, 250000, tzinfo=timezone(timedelta(hours=8)))}
    assert load({"at": "2026-11-30T08:15:00+08:00", "shape": {"type": "Point"}})["shape"] == {"type": "Point"}
    for refused in ("tomorrow", 1700000000, None):
        assert load({"at": refused}) is None  # marshmallow gives the error
        with pytest.raises(ValidationError):
            When().load({"at": refused})


def test_a_schema_with_hooks_is_marshmallows_alone():
    class Shouting(Schema):
        word = fields.String(required=True)

        @marshmallow.post_load
        def upper(self, data, **kwargs):
            return {"word": data["word"].upper()}

    assert plain_load(Shouting())({"word": "hi"}) is None
    assert Shouting().load({"word": "hi"}) == {"word": "HI"}


def test_schema_validators_run_and_unknown_keys_follow_the_schema():
    class Window(Schema):
        opens = fields.Integer(required=True)
        closes = fields.Integer(required=True)

        class Meta:
            unknown = marshmallow.EXCLUDE

        @validates_schema
        def in_order(self, data, **kwargs):
            if data["opens"] > data["closes"]:
                raise ValidationError("closes before it opens")

    load = plain_load(Window())
    assert load({"opens": 1, "closes": 5, "extra": 1}) == {"opens": 1, "closes": 5}
    assert load({"opens": 5, "closes": 1}) is None
    assert plain_load(Window(), unknown=RAISE)({"opens": 1, "closes": 5, "extra": 1}) is None
    with pytest.raises(ValidationError):
        Window().load({"opens": 5, "closes": 1})


def test_the_schema_class_answers_as_marshmallow_and_uses_the_compiled_forms(monkeypatch):
    class Reading(Schema):
        value = fields.Float(required=True, validate=validate.Range(0, 10))
        tags = fields.List(fields.String(), load_default=list)

    schema = Reading()
    assert schema.load({"value": 3}) == {"value": 3.0, "tags": []}
    with pytest.raises(ValidationError) as refused:
        schema.load({"value": 11})
    assert refused.value.messages == {"value": ["Must be greater than or equal to 0 and less than or equal to 10."]}
    assert schema.dump({"value": 2, "tags": ["a"]}) == {"value": 2.0, "tags": ["a"]}
    assert Reading(many=True).dump([{"value": 1}]) == [{"value": 1.0}]
    # The compiled forms are what answered: without them marshmallow is called.
    calls = []
    monkeypatch.setattr(marshmallow.Schema, "load", lambda self, *a, **k: calls.append("load"))
    monkeypatch.setattr(marshmallow.Schema, "dump", lambda self, *a, **k: calls.append("dump"))
    schema.load({"value": 3})
    schema.dump({"value": 2})
    assert calls == []
    schema.load({"value": "3"})  # a string where a number is declared: marshmallow's rules
    assert calls == ["load"]


@pytest.mark.parametrize("schema_class", SCHEMAS, ids=lambda s: f"{s.__module__}.{s.__name__}")
def test_compiled_dump_agrees_with_marshmallow(schema_class):
    schema = schema_class()
    dump = plain_dump(schema)
    data = marshmallow_load(schema, good_body(schema))
    if isinstance(data, tuple):  # no good body could be built for it
        data = {}
    out = dump(data)
    if out is not None:
        assert out == marshmallow.Schema.dump(schema, data)


def test_every_api_schema_is_a_gridkit_schema():
    # The services' API schemas take the compiled path; a plain marshmallow one would not.
    plain = [f"{s.__module__}.{s.__name__}" for s in SCHEMAS if not issubclass(s, schemas.Schema)]
    assert plain == []


def test_times_are_written_with_their_offset_and_a_naive_one_is_utc():
    from datetime import UTC, datetime, timedelta, timezone
    from types import SimpleNamespace

    class When(Schema):
        at = fields.DateTime()
        seen = fields.List(fields.DateTime())

    class Outer(Schema):
        when = fields.Nested(When)
        items = fields.List(fields.Nested(When))

    naive, beijing = datetime(2026, 12, 8, 13, 3), datetime(2026, 12, 8, 21, 3, tzinfo=timezone(timedelta(hours=8)))
    plain = {"when": {"at": naive, "seen": [naive, beijing]}}
    expected = {"at": "2026-12-08T13:03:00+00:00", "seen": ["2026-12-08T13:03:00+00:00", "2026-12-08T21:03:00+08:00"]}
    assert Outer().dump(plain) == {"when": expected}  # the compiled path
    objects = SimpleNamespace(when=SimpleNamespace(at=naive, seen=[naive, beijing]),
                              items=[SimpleNamespace(at=naive.replace(tzinfo=UTC), seen=[])])
    assert Outer().dump(objects) == {"when": expected, "items": [{"at": "2026-12-08T13:03:00+00:00", "seen": []}]}
