"""Events are contracts: declared once, versioned, schema-checked.

Every event type is declared with :meth:`Catalogue.declare` in its producing
service's ``events.py``. The wire form is a CloudEvents 1.0 JSON envelope;
the CloudEvents ``type`` and the AMQP routing key are both
``<service>.<entity>.<verb>.v<version>`` so a breaking change is a new key
that old consumers never see. The AsyncAPI catalogue (``gridgov catalogue``)
is generated from these declarations.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from marshmallow import Schema, ValidationError

from .schemas import plain_dump, plain_load, wire_check
from .tracing import MAX_TRACESTATE, valid_traceparent

SPECVERSION = "1.0"
MAX_ID_LENGTH = 200  # what an inbox remembers (gridkit.outbox.Inbox.event_id)


class InvalidEvent(ValueError):
    """An event that breaks its contract (publisher bug or bad message)."""


@dataclass(frozen=True, eq=False)
class EventType:
    name: str  # e.g. "grids.grid.created"
    version: int
    schema: type[Schema]
    description: str

    @property
    def type(self) -> str:
        return f"{self.name}.v{self.version}"

    @property
    def producer(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def exchange(self) -> str:
        return exchange_for(self.producer)

    @cached_property
    def _schema(self) -> Schema:
        # Building a marshmallow schema is costly; bulk imports record thousands of events.
        return self.schema()

    @cached_property
    def _check(self) -> Callable[[dict], dict]:
        return wire_check(self._schema)

    @cached_property
    def _plain_dump(self) -> Callable[[Any], dict | None]:
        return plain_dump(self._schema)

    def dump(self, data: Any) -> dict:
        """Validate ``data`` against the schema and return its JSON form."""
        dumped = self._plain_dump(data)
        if dumped is None:
            try:
                dumped = self._schema.dump(data)
            except Exception as exc:  # a wrong type in data
                raise InvalidEvent(f"{self.type}: cannot serialise data: {exc}") from exc
        errors = self._check(dumped)
        if errors:
            raise InvalidEvent(f"{self.type}: invalid data: {json.dumps(errors, ensure_ascii=False)}")
        return dumped

    @cached_property
    def _plain_load(self) -> Callable[[Any], dict | None]:
        return plain_load(self._schema)

    def load(self, data: Any) -> dict:
        loaded = self._plain_load(data)
        if loaded is not None:
            return loaded
        try:
            return self._schema.load(data)
        except ValidationError as exc:
            raise InvalidEvent(f"{self.type}: invalid data: {json.dumps(exc.messages, ensure_ascii=False)}") from exc


def exchange_for(producer: str) -> str:
    return f"gridgov.{producer}.events"


# Every declared event type in this process, by CloudEvents type.
REGISTRY: dict[str, EventType] = {}


@dataclass
class Catalogue:
    """The events one service publishes."""

    producer: str
    events: list[EventType] = field(default_factory=list)

    def declare(self, name: str, *, version: int, schema: type[Schema], description: str) -> EventType:
        if not name.startswith(self.producer + "."):
            raise ValueError(f"{self.producer} may only declare {self.producer}.* events, not {name}")
        event_type = EventType(name, version, schema, description)
        if REGISTRY.get(event_type.type, event_type) != event_type:
            raise ValueError(f"{event_type.type} declared twice")
        REGISTRY[event_type.type] = event_type
        self.events.append(event_type)
        return event_type


def lookup(type_: str) -> EventType:
    try:
        return REGISTRY[type_]
    except KeyError:
        raise InvalidEvent(f"undeclared event type {type_!r}") from None


@dataclass(frozen=True)
class Envelope:
    """A CloudEvents 1.0 event as it travels on the bus."""

    id: str
    type: str
    source: str
    time: str
    data: dict
    subject: str | None = None
    # CloudEvents distributed-tracing extension: the W3C trace context of whatever
    # recorded the event (a request, or the handling of another event).
    traceparent: str | None = None
    tracestate: str | None = None

    @classmethod
    def new(cls, event_type: EventType, data: Any, *, subject: str | None = None,
            trace: tuple[str, str | None] | None = None) -> Envelope:
        if REGISTRY.get(event_type.type) is not event_type:
            raise InvalidEvent(f"undeclared event type {event_type.type!r}")
        return cls(
            id=str(uuid.uuid4()),
            type=event_type.type,
            source=f"gridgov/{event_type.producer}",
            time=datetime.now(UTC).isoformat(),
            data=event_type.dump(data),
            subject=subject,
            traceparent=trace[0] if trace else None,
            tracestate=trace[1] if trace else None,
        )

    def to_json(self) -> dict:
        body = {
            "specversion": SPECVERSION,
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "time": self.time,
            "datacontenttype": "application/json",
            "data": self.data,
        }
        if self.subject is not None:
            body["subject"] = self.subject
        if self.traceparent is not None:
            body["traceparent"] = self.traceparent
            if self.tracestate:
                body["tracestate"] = self.tracestate
        return body

    @classmethod
    def parse(cls, body: Any) -> Envelope:
        """Parse and check an envelope from the wire (bytes, str or dict)."""
        if isinstance(body, bytes | str):
            try:
                body = json.loads(body)
            except ValueError as exc:
                raise InvalidEvent(f"body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise InvalidEvent("envelope must be a JSON object")
        if body.get("specversion") != SPECVERSION:
            raise InvalidEvent(f"specversion must be {SPECVERSION!r}")
        for attr in ("id", "type", "source", "time"):
            if not isinstance(body.get(attr), str) or not body[attr]:
                raise InvalidEvent(f"envelope attribute {attr!r} is missing or not a string")
        if len(body["id"]) > MAX_ID_LENGTH:
            raise InvalidEvent(f"envelope attribute 'id' is longer than {MAX_ID_LENGTH} characters")
        if not isinstance(body.get("data"), dict):
            raise InvalidEvent("envelope attribute 'data' must be an object")
        subject = body.get("subject")
        if subject is not None and not isinstance(subject, str):
            raise InvalidEvent("envelope attribute 'subject' must be a string")
        # W3C: a traceparent that cannot be parsed is ignored (the event starts a new
        # trace), and so is the tracestate beside it; neither makes the event invalid.
        traceparent = body.get("traceparent")
        tracestate = body.get("tracestate")
        if not valid_traceparent(traceparent):
            traceparent = tracestate = None
        elif not isinstance(tracestate, str) or not tracestate or len(tracestate) > MAX_TRACESTATE:
            tracestate = None
        return cls(body["id"], body["type"], body["source"], body["time"], body["data"], subject,
                   traceparent, tracestate)


def asyncapi(catalogues: list[Catalogue], subscriptions: list | None = None) -> dict:
    """The machine-readable catalogue (AsyncAPI 3.0) departments read."""
    from apispec import APISpec
    from apispec.ext.marshmallow import MarshmallowPlugin

    spec = APISpec("gridgov events", "1", "3.0.3", plugins=[MarshmallowPlugin()])
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schema_names: dict[type, str] = {}
    for catalogue in catalogues:
        for et in catalogue.events:
            message_name = et.type.replace(".", "_")
            schema_name = schema_names.get(et.schema)
            if schema_name is None:  # one component per schema class, shared by its events
                schema_name = schema_names[et.schema] = f"{et.producer}.{et.schema.__name__}"
                spec.components.schema(schema_name, schema=et.schema)
            messages[message_name] = {
                "name": et.type,
                "title": et.name,
                "summary": et.description,
                "contentType": "application/cloudevents+json",
                "payload": {
                    "allOf": [
                        {"$ref": "#/components/schemas/CloudEvent"},
                        {"type": "object", "properties": {
                            "type": {"const": et.type},
                            "data": {"$ref": f"#/components/schemas/{schema_name}"},
                        }},
                    ]
                },
            }
            channels[et.type] = {
                "address": et.type,
                "description": f"Routing key {et.type} on exchange {et.exchange} (topic, durable).",
                "messages": {message_name: {"$ref": f"#/components/messages/{message_name}"}},
                "bindings": {"amqp": {"is": "routingKey", "exchange": {
                    "name": et.exchange, "type": "topic", "durable": True, "autoDelete": False}}},
            }
            operations[f"publish_{message_name}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{et.type}"},
                "summary": f"{et.producer} publishes {et.type}",
            }
    schemas = spec.to_dict().get("components", {}).get("schemas", {})
    schemas["CloudEvent"] = CLOUDEVENT_JSON_SCHEMA
    doc = {
        "asyncapi": "3.0.0",
        "info": {
            "title": "gridgov events",
            "version": "1",
            "description": "Every event gridgov services publish. Envelope: CloudEvents 1.0 JSON. "
            "Bind a durable queue of your own to the producer's exchange with the event type as routing key.",
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": dict(sorted(channels.items())),
        "operations": dict(sorted(operations.items())),
        "components": {"messages": dict(sorted(messages.items())), "schemas": dict(sorted(schemas.items()))},
    }
    if subscriptions:
        doc["x-gridgov-subscriptions"] = subscriptions
    return doc


CLOUDEVENT_JSON_SCHEMA = {
    "type": "object",
    "required": ["specversion", "id", "type", "source", "time", "data"],
    "properties": {
        "specversion": {"const": "1.0"},
        "id": {"type": "string", "description": "Unique per event; consumers de-duplicate on it."},
        "type": {"type": "string", "description": "<service>.<entity>.<verb>.v<version>; also the routing key."},
        "source": {"type": "string", "description": "gridgov/<service>"},
        "time": {"type": "string", "format": "date-time"},
        "subject": {"type": "string", "description": "Id of the thing the event is about."},
        "traceparent": {"type": "string", "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}",
                        "description": "CloudEvents distributed-tracing extension: the W3C trace context "
                        "of the request or event handling that recorded this event. Consumers continue "
                        "the trace; an invalid value is ignored (W3C), never a reason to reject the event."},
        "tracestate": {"type": "string", "maxLength": MAX_TRACESTATE,
                       "description": "W3C tracestate accompanying traceparent (vendor-specific)."},
        "datacontenttype": {"const": "application/json"},
        "data": {"type": "object"},
    },
}
