"""On real RabbitMQ: grid events leave through the outbox; identity's people arrive."""

import json
import uuid

from sqlalchemy import select

from contracts.grids import GRID_CREATED
from contracts.identity import USER_REGISTERED
from gridkit.bus import Outgoing
from gridkit.events import Envelope
from gridkit.testkit import wait_for
from grids.service import spec
from grids.tables import Person, outbox
from grids.testing import grid_body, rect, seed_divisions


def test_a_created_grid_reaches_a_subscriber_queue_and_a_registered_user_becomes_a_person(
        make_runtime, tokens):
    runtime = make_runtime(spec, db="postgres", bus="amqp")
    divisions = seed_divisions(runtime)
    runtime.bus.declare_queues({"dispatch-test.grids": [(GRID_CREATED.exchange, GRID_CREATED.type)]})
    runtime.start_background()
    assert runtime.extras["worker"].ready.wait(15)
    client = runtime.app(testing=True).test_client()
    created = client.post("/grids", json=grid_body("S-1", rect(100.0, 25.0, 100.05, 25.1),
                                                   division_id=divisions["DL-01-01"]),
                          headers=tokens.header(("county_admin", "county")))
    assert created.status_code == 201

    def sent():
        with runtime.db.sessions() as session:
            return session.execute(select(outbox.table.c.status)).scalar_one() == "sent"
    wait_for(sent, message="the relay to publish grids.grid.created")
    with runtime.bus.connect() as conn:
        message = wait_for(lambda: conn.default_channel.basic_get("dispatch-test.grids", no_ack=True),
                           message="the event in the subscriber's queue")
        event = json.loads(message.body)
    assert event["type"] == "grids.grid.created.v1" and event["data"]["id"] == created.json["id"]
    assert event["data"]["boundary"]["type"] == "Polygon"

    user_id = str(uuid.uuid4())
    envelope = Envelope.new(USER_REGISTERED, {"user_id": user_id, "kind": "staff", "display_name": "杨丽"},
                            subject=user_id)
    result = runtime.bus.publish_batch([Outgoing(envelope.id, USER_REGISTERED.exchange, USER_REGISTERED.type,
                                                 json.dumps(envelope.to_json()).encode())])
    assert envelope.id in result.confirmed

    def person():
        with runtime.db.sessions() as session:
            return session.get(Person, user_id)
    assert wait_for(person, message="the people projection").display_name == "杨丽"
    grid_id = created.json["id"]
    client.post(f"/grids/{grid_id}/staff", json={"user_id": user_id, "role": "grid_worker"},
                headers=tokens.header(("county_admin", "county")))
    staff = client.get(f"/grids/{grid_id}/staff", headers=tokens.header(("resident", "county"))).json
    assert staff["current"][0]["display_name"] == "杨丽"
