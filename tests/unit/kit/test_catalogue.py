"""The AsyncAPI catalogue departments read is generated, complete and current."""

import json
import re
from pathlib import Path

from gridkit import registry
from gridkit.cli import catalogue_document

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "docs" / "events" / "asyncapi.json"


def test_the_committed_catalogue_is_what_the_declarations_generate():
    generated = json.loads(json.dumps(catalogue_document(), ensure_ascii=False))
    assert json.loads(COMMITTED.read_text()) == generated, "run `make catalogue` and commit the result"


def test_every_declared_event_has_a_channel_with_its_exchange():
    doc = catalogue_document()
    for name in registry.available():
        for event_type in registry.load(name).catalogue.events:
            channel = doc["channels"][event_type.type]
            assert channel["bindings"]["amqp"]["exchange"]["name"] == f"gridgov.{name}.events"


def test_every_reference_in_the_catalogue_resolves():
    doc = catalogue_document()
    refs = re.findall(r'"\$ref": "#/([^"]+)"', json.dumps(doc))
    assert refs
    for ref in refs:
        node = doc
        for part in ref.split("/"):
            node = node[part]


def test_no_event_carries_phone_numbers_or_national_ids():
    schemas = json.dumps(catalogue_document()["components"]["schemas"]).lower()
    for personal in ("phone", "national_id", "id_number", "mobile"):
        assert personal not in schemas
