"""Events are contracts: bad envelopes and bad events are refused where they appear."""

from __future__ import annotations

import json

import pytest
from marshmallow import Schema, fields
from sqlalchemy import func, select

from gridkit.db import Database, declarative_base
from gridkit.events import Catalogue, Envelope, EventType, InvalidEvent
from gridkit.outbox import Inbox, Outbox


class ThingSchema(Schema):
    thing_id = fields.Integer(required=True)
    name = fields.String(required=True)


catalogue = Catalogue("kittest")
THING_HAPPENED = catalogue.declare("kittest.thing.happened", version=1, schema=ThingSchema,
                                   description="Something happened to a thing.")

Base = declarative_base()
outbox = Outbox(Base.metadata)
inbox = Inbox(Base.metadata)


def good(**changes) -> dict:
    body = {"specversion": "1.0", "id": "e-1", "type": THING_HAPPENED.type, "source": "gridgov/kittest",
            "time": "2024-05-01T08:00:00+00:00", "data": {"thing_id": 7, "name": "lamp"}}
    return {k: v for k, v in (body | changes).items() if v is not ...}


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'kit.db'}")
    Base.metadata.create_all(database.engine)
    yield database
    database.dispose()


def outbox_rows(db: Database) -> int:
    with db.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(outbox.table)).scalar_one()


def test_a_new_envelope_survives_the_wire():
    envelope = Envelope.new(THING_HAPPENED, {"thing_id": 7, "name": "lamp"}, subject="7")

    wire = json.dumps(envelope.to_json()).encode()

    assert Envelope.parse(wire) == envelope
    assert envelope.type == "kittest.thing.happened.v1" and envelope.source == "gridgov/kittest"


def test_a_well_formed_envelope_parses_from_bytes_text_and_dict():
    for body in (json.dumps(good()).encode(), json.dumps(good()), good()):
        assert Envelope.parse(body).data == {"thing_id": 7, "name": "lamp"}


@pytest.mark.parametrize(("body", "complaint"), [
    (b"{not json", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b"[1, 2]", "JSON object"),
    (json.dumps(good(specversion="0.3")), "specversion"),
    (json.dumps(good(specversion=...)), "specversion"),
    (json.dumps(good(id=...)), "'id'"),
    (json.dumps(good(id="")), "'id'"),
    (json.dumps(good(id=12)), "'id'"),
    (json.dumps(good(id="x" * 201)), "longer than 200"),
    (json.dumps(good(type=...)), "'type'"),
    (json.dumps(good(source=None)), "'source'"),
    (json.dumps(good(time=...)), "'time'"),
    (json.dumps(good(data=...)), "'data'"),
    (json.dumps(good(data=[1])), "'data'"),
    (json.dumps(good(subject=5)), "'subject'"),
])
def test_a_broken_envelope_is_refused_with_the_reason(body, complaint):
    with pytest.raises(InvalidEvent, match=complaint):
        Envelope.parse(body)


def test_recording_an_undeclared_event_type_raises_at_the_publisher(db):
    stranger = EventType("kittest.thing.vanished", 1, ThingSchema, "never declared")

    with pytest.raises(InvalidEvent, match="undeclared event type"):
        with db.transaction() as session:
            outbox.record(session, stranger, {"thing_id": 1, "name": "x"})

    assert outbox_rows(db) == 0


@pytest.mark.parametrize("data", [
    {"thing_id": 7},
    {"thing_id": "seven", "name": "lamp"},
    {"name": "lamp"},
])
def test_recording_data_that_breaks_the_schema_raises_at_the_publisher(db, data):
    with pytest.raises(InvalidEvent, match="kittest.thing.happened.v1"):
        with db.transaction() as session:
            outbox.record(session, THING_HAPPENED, data)

    assert outbox_rows(db) == 0


def test_a_recorded_event_waits_in_the_outbox_as_its_wire_form(db):
    with db.transaction() as session:
        envelope = outbox.record(session, THING_HAPPENED, {"thing_id": 7, "name": "lamp"}, subject="7")

    with db.engine.connect() as conn:
        row = conn.execute(select(outbox.table)).one()
    assert (row.event_id, row.status, row.attempts) == (envelope.id, "pending", 0)
    assert (row.exchange, row.routing_key) == ("gridgov.kittest.events", "kittest.thing.happened.v1")
    assert Envelope.parse(row.body) == envelope


def test_a_second_declaration_of_the_same_type_with_another_schema_is_refused():
    class Other(Schema):
        x = fields.Integer()

    with pytest.raises(ValueError, match="declared twice"):
        Catalogue("kittest").declare("kittest.thing.happened", version=1, schema=Other, description="")


def test_a_service_may_only_declare_its_own_events():
    with pytest.raises(ValueError, match="only declare kittest"):
        Catalogue("kittest").declare("grids.grid.stolen", version=1, schema=ThingSchema, description="")
