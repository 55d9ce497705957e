"""W3C trace context: from a request's headers into the events it records (the CloudEvents
distributed-tracing extension), and from an event into its handling, its logs and the
events recorded there."""

from __future__ import annotations

import json
import logging

import pytest
from marshmallow import Schema, fields
from opentelemetry import trace

from gridkit import tracing
from gridkit.bus import Bus
from gridkit.consumer import Outcome, Subscriptions, Worker
from gridkit.db import Database, declarative_base
from gridkit.events import Catalogue, Envelope, InvalidEvent
from gridkit.logs import JsonFormatter
from gridkit.outbox import Inbox, Outbox

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


class LampSchema(Schema):
    lamp_id = fields.Integer(required=True)


catalogue = Catalogue("tracetest")
LAMP_BROKEN = catalogue.declare("tracetest.lamp.broken", version=1, schema=LampSchema,
                                description="A street lamp is out.")
LAMP_FIXED = catalogue.declare("tracetest.lamp.fixed", version=1, schema=LampSchema,
                               description="A street lamp shines again.")

Base = declarative_base()
outbox = Outbox(Base.metadata)
inbox = Inbox(Base.metadata)


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'trace.db'}")
    Base.metadata.create_all(database.engine)
    yield database
    database.dispose()


def wire(**changes) -> dict:
    body = {"specversion": "1.0", "id": "e-1", "type": LAMP_BROKEN.type, "source": "gridgov/tracetest",
            "time": "2024-05-01T08:00:00+00:00", "data": {"lamp_id": 7}}
    return body | changes


def current_ids() -> tuple[str, str]:
    ctx = trace.get_current_span().get_span_context()
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def recorded_envelopes(db: Database) -> list[Envelope]:
    with db.engine.connect() as conn:
        return [Envelope.parse(body) for (body,) in conn.execute(outbox.table.select().with_only_columns(
            outbox.table.c.body).order_by(outbox.table.c.id))]


def test_an_envelope_carries_its_trace_context_over_the_wire():
    envelope = Envelope.parse(wire(traceparent=PARENT, tracestate="congo=t61rcWkgMzE"))

    assert (envelope.traceparent, envelope.tracestate) == (PARENT, "congo=t61rcWkgMzE")
    assert Envelope.parse(json.dumps(envelope.to_json())) == envelope


@pytest.mark.parametrize("traceparent", [
    "garbage", 42, "", f"ff-{TRACE_ID}-b7ad6b7169203331-01", f"00-{'0' * 32}-b7ad6b7169203331-01",
    f"00-{TRACE_ID}-{'0' * 16}-01", f"00-{TRACE_ID.upper()}-b7ad6b7169203331-01", f"{PARENT}-extra",
])
def test_an_invalid_traceparent_is_ignored_not_a_reason_to_refuse_the_event(traceparent):
    envelope = Envelope.parse(wire(traceparent=traceparent, tracestate="congo=t61rcWkgMzE"))

    assert envelope.id == "e-1"
    assert (envelope.traceparent, envelope.tracestate) == (None, None)
    assert "traceparent" not in envelope.to_json()


def test_a_later_traceparent_version_with_more_fields_is_understood():
    later = f"01-{TRACE_ID}-b7ad6b7169203331-01-what-comes-next"
    assert Envelope.parse(wire(traceparent=later)).traceparent == later


def test_the_envelope_is_still_checked_whatever_its_trace():
    with pytest.raises(InvalidEvent, match="'id'"):
        Envelope.parse(wire(id="", traceparent=PARENT))


def test_a_request_continues_the_callers_trace_and_its_events_carry_it(db):
    span, token = tracing.start_server_span("POST /lamps", {"HTTP_TRACEPARENT": PARENT,
                                                            "HTTP_TRACESTATE": "congo=t61rcWkgMzE"})
    try:
        trace_id, span_id = current_ids()
        with db.transaction() as session:
            outbox.record(session, LAMP_BROKEN, {"lamp_id": 7})
    finally:
        tracing.end(span, token)

    assert trace_id == TRACE_ID and span_id != "b7ad6b7169203331"  # the request's own span
    [envelope] = recorded_envelopes(db)
    assert envelope.traceparent == f"00-{TRACE_ID}-{span_id}-01"
    assert envelope.tracestate == "congo=t61rcWkgMzE"
    assert not trace.get_current_span().get_span_context().is_valid  # and the context is left


@pytest.mark.parametrize("header", ["nonsense", f"00-{'0' * 32}-b7ad6b7169203331-01"])
def test_a_request_with_an_invalid_traceparent_starts_a_trace_of_its_own(header):
    span, token = tracing.start_server_span("GET /lamps", {"HTTP_TRACEPARENT": header})
    try:
        trace_id, _ = current_ids()
    finally:
        tracing.end(span, token)
    assert trace_id != "0" * 32 and trace_id != TRACE_ID


def test_an_event_recorded_outside_any_trace_has_no_trace_context(db):
    with db.transaction() as session:
        outbox.record(session, LAMP_BROKEN, {"lamp_id": 7})

    [envelope] = recorded_envelopes(db)
    assert envelope.traceparent is None and "traceparent" not in envelope.to_json()


def test_a_consumer_handles_an_event_in_its_trace_and_the_events_it_records_carry_it(db):
    seen = {}
    subscriptions = Subscriptions("tracetest")

    @subscriptions.on(LAMP_BROKEN, purpose="repairs")
    def repair(session, event):
        seen["ids"] = current_ids()
        seen["traceparent"] = event.traceparent
        outbox.record(session, LAMP_FIXED, {"lamp_id": event.data["lamp_id"]})

    worker = Worker(subscriptions, db, inbox, Bus("memory://"))
    body = json.dumps(wire(traceparent=PARENT))
    outcome = worker.handle(subscriptions.queues["tracetest.repairs"], body, {}, {})

    assert outcome == Outcome.PROCESSED
    trace_id, span_id = seen["ids"]
    assert trace_id == TRACE_ID and span_id != "b7ad6b7169203331"
    assert seen["traceparent"] == PARENT
    [fixed] = recorded_envelopes(db)
    assert fixed.traceparent == f"00-{TRACE_ID}-{span_id}-01"


def test_a_log_line_names_the_trace_and_span_it_was_written_in():
    formatter = JsonFormatter("tracetest", "worker")
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "handled", (), None)

    outside = json.loads(formatter.format(record))
    with tracing.consuming("tracetest.repairs", "e-1", PARENT, None):
        _, span_id = current_ids()
        inside = json.loads(formatter.format(record))

    assert "trace_id" not in outside and outside["process"] == "worker"
    assert (inside["trace_id"], inside["span_id"]) == (TRACE_ID, span_id)


def test_when_spans_are_exported_the_sdk_records_them_in_the_same_trace(monkeypatch):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    monkeypatch.setattr(tracing, "exporting", True)

    span, token = tracing.start_server_span("POST /lamps", {"HTTP_TRACEPARENT": PARENT})
    carried = tracing.outgoing()  # what an event recorded here carries
    tracing.end(span, token)
    assert carried is not None
    with tracing.consuming("tracetest.repairs", "e-1", carried[0], None):
        pass

    request, handling = exported.get_finished_spans()
    assert request.context.trace_id == handling.context.trace_id == int(TRACE_ID, 16)
    assert request.parent.span_id == 0xB7AD6B7169203331
    assert handling.parent.span_id == request.context.span_id
    assert handling.attributes["messaging.message.id"] == "e-1"
    assert handling.kind == trace.SpanKind.CONSUMER


def test_each_pass_of_a_background_loop_is_a_trace_of_its_own_that_its_events_carry(db):
    for lamp_id in (1, 2):
        with tracing.background("tracetest sweep"), db.transaction() as session:
            outbox.record(session, LAMP_BROKEN, {"lamp_id": lamp_id})
    with db.transaction() as session:  # outside any pass: no trace to carry
        outbox.record(session, LAMP_BROKEN, {"lamp_id": 3})

    first, second, outside = recorded_envelopes(db)
    assert tracing.valid_traceparent(first.traceparent) and tracing.valid_traceparent(second.traceparent)
    assert first.traceparent[3:35] != second.traceparent[3:35]
    assert outside.traceparent is None
