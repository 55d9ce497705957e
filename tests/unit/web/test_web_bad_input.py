"""The kit's door for bad input: JSON bodies (gridkit.inputs), cursors (gridkit.pagination)
and ids (gridkit.schemas.Id)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from flask import request
from marshmallow import ValidationError

from gridkit import inputs
from gridkit.config import Settings
from gridkit.pagination import Cursor, RowId, Text, Uuid
from gridkit.problems import Invalid
from gridkit.schemas import MAX_ID, Id, Schema
from gridkit.service import Runtime

from .sample_service import spec

PROBLEM = "application/problem+json"


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# --- JSON bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [1, 8, inputs.MAX_JSON_DEPTH])
def test_json_up_to_the_nesting_limit_is_read(levels):
    value = inputs.loads(nested(levels).encode())
    for _ in range(levels - 1):
        value = value[0]
    assert value == []


@pytest.mark.parametrize("body", [
    nested(inputs.MAX_JSON_DEPTH + 1),
    nested(900),  # Python still reads this one itself
    nested(100_000),  # and this one overflows its stack
    '{"a": [1, 2, {"b": ' + nested(40) + "}]}",
    '[1, "[[[[", ' + '{"k": ' * 40 + "0" + "}" * 40 + "]",
])
def test_json_nested_past_the_limit_is_a_422_naming_json(body):
    for raw in (body, body.encode()):
        with pytest.raises(inputs.TooDeep) as refused:
            inputs.loads(raw)
        assert refused.value.status == 422 and list(refused.value.errors) == ["json"]


def test_many_brackets_side_by_side_are_not_depth():
    points = json.dumps({"points": [[100.0, 25.0]] * 5000})
    assert len(inputs.loads(points.encode())["points"]) == 5000
    # brackets inside strings count for the quick test only
    assert inputs.loads(json.dumps({"text": "[" * 1000}).encode()) == {"text": "[" * 1000}


def test_a_number_python_will_not_read_is_a_422_naming_json():
    with pytest.raises(inputs.Unreadable) as refused:
        inputs.loads(b'{"n": ' + b"9" * 5000 + b"}")
    assert list(refused.value.errors) == ["json"]


def test_a_lone_surrogate_is_a_422_naming_json_and_a_pair_is_an_emoji():
    for raw in (b'{"name": "\\ud800"}', b'["ok", {"\\uDFFF": 1}]', '{"n": "\\udc00x"}'):
        with pytest.raises(inputs.Unreadable) as refused:
            inputs.loads(raw)
        assert list(refused.value.errors) == ["json"]
    assert inputs.loads(b'{"name": "\\ud83d\\ude00"}') == {"name": "\U0001f600"}


def test_malformed_json_is_left_to_webargs_as_before():
    for raw in (b"{not json", b"\xff\xfe", b""):
        with pytest.raises(json.JSONDecodeError):
            inputs.loads(raw)


@pytest.fixture
def app(tmp_path, tokens):
    settings = Settings(service="sample", database_url=f"sqlite:///{tmp_path}/sample.db")
    app = Runtime.build(spec, settings, verifier=tokens.verifier()).app(testing=True)
    app.add_url_rule("/echo", "echo", lambda: {"got": request.get_json()}, methods=["POST"])
    return app


@pytest.mark.parametrize("path", ["/notes", "/echo"])
def test_every_json_body_a_route_reads_goes_through_the_nesting_limit(app, path):
    # /notes reads through webargs (@blp.arguments), /echo through request.get_json()
    client = app.test_client()
    response = client.post(path, data=nested(50_000), content_type="application/json")
    assert response.status_code == 422 and response.content_type == PROBLEM
    assert response.json["errors"] == {"json": [f"nested deeper than {inputs.MAX_JSON_DEPTH} levels"]}
    response = client.post(path, data=nested(100), content_type="application/json")
    assert response.status_code == 422 and "json" in response.json["errors"]


def test_a_body_is_parsed_once_per_request(app, monkeypatch):
    calls = []
    real = inputs.core.parse_json
    monkeypatch.setattr(inputs.core, "parse_json", lambda raw: calls.append(raw) or real(raw))
    with app.test_request_context("/notes", method="POST", json={"title": "x"}):
        first, second = inputs.request_json(), inputs.request_json()
    assert first is second and len(calls) == 1


# --- cursors ----------------------------------------------------------------------------------

PETITIONS = Cursor(datetime, Text(36))
BY_ID = Cursor(RowId())


def test_a_cursor_comes_back_as_the_typed_key_it_was_made_of():
    at = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    assert PETITIONS.decode(PETITIONS.encode(at, "p-1")) == (at, "p-1")
    assert BY_ID.decode(BY_ID.encode(42)) == (42,)
    assert BY_ID.encode(42) == b64("[42]")  # what gridkit.pagination always gave out


def test_the_bare_id_cursors_grids_and_identity_gave_out_before_still_work():
    grids_old = base64.urlsafe_b64encode(b"123").decode()
    assert BY_ID.decode(grids_old) == (123,)
    user = "0190a0a0-0000-7000-8000-000000000001"
    identity_old = base64.urlsafe_b64encode(user.encode()).decode()
    assert Cursor(Uuid()).decode(identity_old) == (user,)


@pytest.mark.parametrize("text", [
    b64(json.dumps([{"a": 1}])), b64(json.dumps([[1, 2]])), b64(json.dumps([2**80])),
    b64(json.dumps([0])), b64(json.dumps([-1])), b64(json.dumps([1.5])), b64(json.dumps([True])),
    b64(json.dumps([None])), b64(json.dumps([])), b64(json.dumps([1, 2])), b64(json.dumps({"a": 1})),
    b64("99999999999999999999999"), b64("-5"), b64("1e3"), b64("NaN"), b64("[NaN]"), b64("[Infinity]"),
    b64("[" * 300 + "]" * 300), "!!!", "a", "x" * 600, b64("[1"), "_w", base64.b64encode(b"\xff\xfe").decode(),
])
def test_an_id_cursor_of_the_wrong_shape_type_or_range_is_a_422_naming_cursor(text):
    with pytest.raises(Invalid) as refused:
        BY_ID.decode(text)
    assert list(refused.value.errors) == ["cursor"]


@pytest.mark.parametrize("values", [
    ["2026-12-01T08:30:00", "p-1"],  # no offset
    ["0001-01-01T00:00:00+14:00", "p-1"],  # before year 1 in UTC
    ["2026-12-01T08:30:00+00:00", "x" * 37],
    ["2026-12-01T08:30:00+00:00", "p\x00"],
    ["2026-12-01T08:30:00+00:00", 7],
    ["not a time", "p-1"],
    [{"a": 1}, "p-1"],
    ["2026-12-01T08:30:00+00:00"],
])
def test_a_two_key_cursor_checks_each_key(values):
    with pytest.raises(Invalid):
        PETITIONS.decode(b64(json.dumps(values)))


def test_a_cursor_field_loads_the_tuple_or_names_the_field():
    class Query(Schema):
        cursor = BY_ID.field()

    assert Query().load({"cursor": BY_ID.encode(7)}) == {"cursor": (7,)}
    assert Query().load({"cursor": ""}) == {"cursor": None}  # ?cursor= is the first page
    with pytest.raises(ValidationError) as refused:
        Query().load({"cursor": b64(json.dumps([2**80]))})
    assert list(refused.value.messages) == ["cursor"]


# --- ids --------------------------------------------------------------------------------------


class Thing(Schema):
    grid = Id()


@pytest.mark.parametrize("value, loaded", [(1, 1), ("17", 17), (MAX_ID, MAX_ID), (str(MAX_ID), MAX_ID)])
def test_an_id_within_sixty_four_bits_is_loaded(value, loaded):
    assert Thing().load({"grid": value}) == {"grid": loaded}


@pytest.mark.parametrize("value", [0, -1, MAX_ID + 1, 2**80, "99999999999999999999999", "-3", 1.0, 1.5, True,
                                   "1e3", " 5", "", "x", [], {}])
def test_an_id_out_of_range_or_of_another_type_is_refused_by_name(value):
    with pytest.raises(ValidationError) as refused:
        Thing().load({"grid": value})
    assert list(refused.value.messages) == ["grid"]
