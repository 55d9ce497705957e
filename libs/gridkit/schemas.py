"""marshmallow schemas, compiled for the common case.

marshmallow calls several layers per field (get the value, deserialize, store
errors, validate), which on a busy route cost more than the route's own work.
For plain JSON data (strings, numbers, booleans, lists, dicts, nested objects)
a schema can be walked once with its own fields and validators instead. Each
compiled function handles only what it is sure of and hands everything else to
marshmallow, so answers and error messages are always marshmallow's:

* :func:`plain_load` — ``schema.load(data)`` for JSON data that the schema
  accepts; ``None`` (ask marshmallow) for anything it might refuse.
* :func:`plain_dump` — ``schema.dump(data)`` for a dict of plain values;
  ``None`` (ask marshmallow) for anything else.
* :func:`wire_check` — the errors of an already dumped event (what
  marshmallow's ``validate`` would find), without loading it back.

:class:`Id` is the field for every integer row id a client sends (query
string or body): 1 … 2**63-1, so that no id reaches a 64-bit column (or
SQLite's INTEGER) out of range.

:class:`Schema` is marshmallow's, loading and dumping through these first; the
services' API schemas derive from it. A schema with anything these do not know
(pre/post hooks, other field types, partial loads) is simply marshmallow's.
Tests prove the compiled answers equal marshmallow's for every schema declared
(tests/unit/kit/test_kit_schemas.py).

Times are written with their offset: a naive datetime (SQLite hands them back
naive; everything stored is UTC) is written as UTC, ``+00:00``, by both paths.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import marshmallow
from marshmallow import EXCLUDE, RAISE, ValidationError, fields, validate
from marshmallow.decorators import (
    POST_DUMP,
    POST_LOAD,
    PRE_DUMP,
    PRE_LOAD,
    VALIDATES,
    VALIDATES_SCHEMA,
)

__all__ = ["Id", "MAX_ID", "Schema", "plain_dump", "plain_load", "wire_check"]

MAX_ID = 2**63 - 1  # the largest value of a BIGINT (and of SQLite's INTEGER)
_ID_TEXT = re.compile(r"-?[0-9]{1,40}")


class Id(fields.Integer):
    """An integer row id, 1 … :data:`MAX_ID`: a JSON integer, or its decimal digits in a
    query string. Anything else (a float, a boolean, ``1e3``, a number past 64 bits) is
    refused with the field's name, before any query."""

    default_error_messages = {"invalid": "Not a valid id."}

    def __init__(self, **kwargs):
        validators = kwargs.pop("validate", None) or []
        validators = list(validators) if isinstance(validators, (list, tuple)) else [validators]
        in_range = validate.Range(1, MAX_ID, error=f"must be an id from 1 to {MAX_ID}")
        super().__init__(validate=[in_range, *validators], **kwargs)

    def _validated(self, value):
        if type(value) is int:
            return value
        if type(value) is str and _ID_TEXT.fullmatch(value):
            return int(value)
        raise self.make_error("invalid", input=value)


class _Unknown(Exception):
    """The schema has something the compiled forms do not handle."""


class _NotPlain(Exception):
    """This value is not plain data: marshmallow decides."""


def isoformat(value: datetime) -> str:
    """ISO 8601 with the offset; a naive datetime is UTC."""
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).isoformat()


_ISO_WITH_OFFSET = {**fields.DateTime.SERIALIZATION_FUNCS, "iso": isoformat, "iso8601": isoformat}


class Schema(marshmallow.Schema):
    """marshmallow's Schema; plain JSON data is loaded and dumped by compiled functions
    (same answers, a fraction of the cost), anything else by marshmallow. Either way
    datetimes are written with their offset."""

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        for field in (field_obj, getattr(field_obj, "inner", None)):
            if type(field) in (fields.DateTime, fields.AwareDateTime):
                field.SERIALIZATION_FUNCS = _ISO_WITH_OFFSET  # type: ignore[union-attr]

    def load(self, data, *, many=None, partial=None, unknown=None):
        if not many and not self.many and partial is None and not self.partial:
            loaded = _compiled_load(self, unknown)(data)
            if loaded is not None:
                return loaded
        return super().load(data, many=many, partial=partial, unknown=unknown)

    def dump(self, obj, *, many=None):
        many = self.many if many is None else many
        dump = _compiled_dump(self)
        if many:
            if type(obj) in (list, tuple):
                out = [dump(item) for item in obj]
                if None not in out:
                    return out
        else:
            out = dump(obj)
            if out is not None:
                return out
        return super().dump(obj, many=many)


def _compiled_load(schema: marshmallow.Schema, unknown: str | None) -> Callable[[Any], dict | None]:
    # Cached on the instance: schemas are built once per route (gridkit.web.Blueprint).
    cache = schema.__dict__.setdefault("_gridkit_load", {})
    load = cache.get(unknown)
    if load is None:
        load = cache[unknown] = plain_load(schema, unknown=unknown)
    return load


def _compiled_dump(schema: marshmallow.Schema) -> Callable[[Any], dict | None]:
    dump = schema.__dict__.get("_gridkit_dump")
    if dump is None:
        dump = schema.__dict__["_gridkit_dump"] = plain_dump(schema)
    return dump


# --- load ------------------------------------------------------------------------------------


def plain_load(schema: marshmallow.Schema, *, unknown: str | None = None) -> Callable[[Any], dict | None]:
    """A function giving ``schema.load(data, unknown=unknown)`` for JSON data the schema
    accepts, or None whenever marshmallow might answer otherwise (a value of another type,
    a failed validator, an unknown key): marshmallow then loads it and gives the errors."""
    try:
        load_or_raise = _compile_load(schema, unknown)
    except _Unknown:
        return lambda data: None

    def load(data: Any) -> dict | None:
        try:
            return load_or_raise(data)
        except (_NotPlain, ValidationError):
            return None

    return load


def _compile_load(schema: marshmallow.Schema, unknown: str | None) -> Callable[[Any], dict]:
    hooks = schema._hooks
    if hooks.get(PRE_LOAD) or hooks.get(POST_LOAD) or hooks.get(VALIDATES) or schema.many or schema.partial:
        raise _Unknown
    unknown = schema.unknown if unknown is None else unknown
    if unknown not in (RAISE, EXCLUDE):
        raise _Unknown
    plan = []
    for name, field in schema.load_fields.items():
        attribute = field.attribute or name
        if "." in attribute:
            raise _Unknown  # marshmallow nests dotted attributes
        plan.append((field.data_key or name, attribute, field.required, field.load_default,
                     _value_load(field)))
    known = frozenset(key for key, *_ in plan)
    validators = []
    for attr_name, hook_many, options in hooks.get(VALIDATES_SCHEMA, ()):
        if hook_many or options.get("pass_original"):
            raise _Unknown
        validators.append(getattr(schema, attr_name))
    marshmallow_missing = marshmallow.missing

    def load(data: Any) -> dict:
        if type(data) is not dict or (unknown == RAISE and not known.issuperset(data)):
            raise _NotPlain
        out = {}
        for key, attribute, required, default, value_load in plan:
            if key in data:
                out[attribute] = value_load(data[key])
            elif required:
                raise _NotPlain
            elif default is not marshmallow_missing:
                out[attribute] = default() if callable(default) else default
        for validator in validators:
            validator(out, partial=None, many=False, unknown=unknown)
        return out

    return load


def _value_load(field: fields.Field) -> Callable[[Any], Any]:
    """One field's loaded value (validators applied), or _NotPlain / ValidationError."""
    if field.pre_load or field.post_load:
        raise _Unknown
    kind = type(field)
    typed: Callable[[Any], Any]
    if kind is fields.Nested and isinstance(field, fields.Nested):
        if field.many:
            raise _Unknown
        typed = _compile_load(field.schema, field.unknown)  # its only/exclude already applied
    elif kind is fields.List and isinstance(field, fields.List):
        item = _value_load(field.inner)

        def typed(value):
            if type(value) is not list:
                raise _NotPlain
            return [item(v) for v in value]
    elif kind is fields.String:
        typed = _exactly(str)
    elif kind is fields.Boolean:
        typed = _exactly(bool)
    elif kind is fields.Integer or kind is Id:
        typed = _exactly(int)
    elif kind is fields.Float and isinstance(field, fields.Float) and not field.allow_nan:
        typed = _finite_float
    elif kind is fields.DateTime and isinstance(field, fields.DateTime) and field.format in (None, "iso", "iso8601"):
        typed = _iso_datetime  # every event's times: its load was marshmallow's for one field
    elif kind is fields.Dict and isinstance(field, fields.Dict) and field.key_field is None \
            and field.value_field is None:
        typed = _plain_dict
    else:
        raise _Unknown
    validators = tuple(field.validators)
    allow_none = field.allow_none

    def value_load(value):
        if value is None:
            if allow_none:
                return None
            raise _NotPlain
        out = typed(value)
        for validator in validators:
            validator(out)
        return out

    return value_load


def _exactly(kind: type) -> Callable[[Any], Any]:
    def typed(value):
        if type(value) is not kind:
            raise _NotPlain
        return value

    return typed


def _finite_float(value):
    if type(value) not in (float, int) or not math.isfinite(value):
        raise _NotPlain
    return float(value)


def _iso_datetime(value):
    # What marshmallow's DateTime does with its default format (datetime.fromisoformat).
    if type(value) is not str:
        raise _NotPlain
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise _NotPlain from None


def _plain_dict(value):
    # marshmallow's Dict without key or value fields: a copy of any mapping.
    if type(value) is not dict:
        raise _NotPlain
    return dict(value)


# --- dump ------------------------------------------------------------------------------------


def plain_dump(schema: marshmallow.Schema) -> Callable[[Any], dict | None]:
    """A function giving what ``schema.dump(data)`` gives for plain data (a dict whose
    values already have the fields' own Python types: str, int, float, bool, datetime,
    dict, list, nested dicts), or None for anything else, which marshmallow then dumps."""
    try:
        dump_or_raise = _compile_dump(schema)
    except _Unknown:
        return lambda data: None

    def dump(data: Any) -> dict | None:
        try:
            return dump_or_raise(data)
        except _NotPlain:
            return None

    return dump


def _compile_dump(schema: marshmallow.Schema) -> Callable[[Any], dict]:
    """The dump of plain data; raises _NotPlain for anything else."""
    if any(schema._hooks.get(hook) for hook in (PRE_DUMP, POST_DUMP)) or schema.many:
        raise _Unknown
    plan = [(f.attribute or name, f.data_key or name, _value_dump(f))
            for name, f in schema.dump_fields.items()]

    def dump(data: Any) -> dict:
        if type(data) is not dict:
            raise _NotPlain
        out = {}
        for attribute, key, value_dump in plan:
            if attribute in data:
                value = data[attribute]
                out[key] = None if value is None else value_dump(value)
        return out

    return dump


def _value_dump(field: fields.Field) -> Callable[[Any], Any]:
    if field.dump_default is not marshmallow.missing:
        raise _Unknown  # a default for absent values: marshmallow's rules
    if isinstance(field, fields.Nested):
        if field.many:
            raise _Unknown
        return _compile_dump(field.schema)
    if isinstance(field, fields.List):
        item = _value_dump(field.inner)

        def each(value):
            if type(value) not in (list, tuple):
                raise _NotPlain
            return [None if v is None else item(v) for v in value]

        return each
    kind = type(field)
    if kind is fields.DateTime and getattr(field, "format", None) in (None, "iso"):
        return _isoformat
    if kind is fields.Float and isinstance(field, fields.Float) and not field.as_string:
        return _float
    if isinstance(field, fields.Number) and field.as_string:
        raise _Unknown
    plain = {fields.String: str, fields.Integer: int, Id: int, fields.Boolean: bool, fields.Dict: dict}.get(kind)
    if plain is None or getattr(field, "key_field", None) or getattr(field, "value_field", None):
        raise _Unknown

    def same(value):
        if type(value) is not plain:
            raise _NotPlain
        return dict(value) if plain is dict else value

    return same


def _isoformat(value):
    if type(value) is not datetime:
        raise _NotPlain
    return isoformat(value)


def _float(value):
    if type(value) not in (float, int):
        raise _NotPlain
    return float(value)


# --- the publisher's check -------------------------------------------------------------------
#
# What a dump may still get wrong is what the schema asks beyond types: a required field
# missing, a null where none is allowed, a value its validators refuse (OneOf, Range…).
# marshmallow's own validate() finds those by loading the dump back (every field parsed
# again, datetimes included), which cost a quarter of a petition's CPU. This check walks
# the wire form once with the schema's own fields and validators; a schema with anything
# it does not know (a schema-level validator, another field type) is checked by
# marshmallow as before.

_WIRE_TYPES: dict[type, tuple[type, ...]] = {
    fields.String: (str,), fields.DateTime: (str,), fields.Integer: (int,), Id: (int,),
    fields.Float: (int, float), fields.Boolean: (bool,), fields.Dict: (dict,),
}


def wire_check(schema: marshmallow.Schema) -> Callable[[dict], dict]:
    """A function giving the errors (marshmallow's shape: field → messages) of a dumped
    event, or {} when it keeps the schema's contract."""
    try:
        return _compile_check(schema)
    except _Unknown:
        return schema.validate


def _compile_check(schema: marshmallow.Schema) -> Callable[[Any], dict]:
    if schema._hooks.get(VALIDATES_SCHEMA) or schema._hooks.get(VALIDATES):
        raise _Unknown
    checks = [(f.data_key or name, f.required, _field_check(f))
              for name, f in schema.fields.items() if not f.dump_only]

    def check(data: Any) -> dict:
        if not isinstance(data, dict):
            return {"_schema": ["Invalid input type."]}
        errors: dict = {}
        for key, required, field_check in checks:
            if key not in data:
                if required:
                    errors[key] = ["Missing data for required field."]
            elif problem := field_check(data[key]):
                errors[key] = problem
        return errors

    return check


def _field_check(field: fields.Field) -> Callable[[Any], Any]:
    """The messages for one given value of ``field``, or None when it keeps the contract."""
    typed = _type_check(field)
    validators = tuple(field.validators)

    def check(value):
        if value is None:
            return None if field.allow_none else ["Field may not be null."]
        if problem := typed(value):
            return problem
        try:
            for validator in validators:
                validator(value)
        except ValidationError as exc:
            return exc.messages
        return None

    return check


def _type_check(field: fields.Field) -> Callable[[Any], Any]:
    if isinstance(field, fields.Nested):
        if field.many:
            raise _Unknown
        inner = _compile_check(field.schema)
        return lambda value: inner(value) if isinstance(value, dict) else ["Invalid input type."]
    if isinstance(field, fields.List):
        item = _field_check(field.inner)

        def each(value):
            if not isinstance(value, list):
                return ["Not a valid list."]
            return {i: problem for i, v in enumerate(value) if (problem := item(v))}

        return each
    wire = _WIRE_TYPES.get(type(field))
    if wire is None:
        raise _Unknown
    refuse_bool = bool not in wire  # True is an int to Python, not to the contract

    def typed(value):
        if not isinstance(value, wire) or (refuse_bool and isinstance(value, bool)):
            return [f"Not a valid {type(field).__name__.lower()}."]
        return None

    return typed

