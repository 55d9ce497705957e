"""On real RabbitMQ: the submitted event leaves through the outbox, and grids' and dispatch's
events arrive through the worker and become places and timeline steps."""

from __future__ import annotations

import json

from contracts.grids import DIVISION_CREATED
from contracts.intake import PETITION_SUBMITTED
from gridgeo.testing import COUNTY
from gridkit.bus import Outgoing
from gridkit.events import Envelope
from gridkit.testkit import wait_for
from intake.service import spec
from intake.tables import Division
from intake.testing import CASE_EVENTS, INSIDE, case_data


def publish(runtime, event_type, data) -> None:
    envelope = Envelope.new(event_type, data, subject=str(data.get("petition_id", data.get("id"))))
    result = runtime.bus.publish_batch([Outgoing(envelope.id, event_type.exchange, event_type.type,
                                                 json.dumps(envelope.to_json()).encode())])
    assert envelope.id in result.confirmed


def test_a_petition_travels_out_and_its_case_steps_come_back_end_to_end(make_runtime, tokens):
    runtime = make_runtime(spec, db="postgres", bus="amqp")
    runtime.bus.declare_queues({"dispatch-test.petitions": [(PETITION_SUBMITTED.exchange, PETITION_SUBMITTED.type)]})
    runtime.start_background()
    assert runtime.extras["worker"].ready.wait(15)

    # grids announces the county: intake's places projection learns it from the bus.
    publish(runtime, DIVISION_CREATED, {"id": 1, "code": "DL", "name": "大理市", "kind": "county",
                                        "parent_id": None, "boundary": COUNTY})
    wait_for(lambda: runtime.db.sessions().get(Division, 1), message="the county in the projection")

    client = runtime.app(testing=True).test_client()
    headers = tokens.header(("resident", "county"), sub="resident-1")
    submitted = client.post("/petitions", json={"category": "noise", "description": "夜间施工噪音",
                                                "place": INSIDE}, headers=headers)
    assert submitted.status_code == 201, submitted.json
    petition = submitted.json

    with runtime.bus.connect() as conn:
        message = wait_for(lambda: conn.default_channel.basic_get("dispatch-test.petitions", no_ack=True),
                           message="intake.petition.submitted in dispatch's queue")
    event = json.loads(message.body)
    assert event["type"] == "intake.petition.submitted.v1" and event["data"]["petition_id"] == petition["id"]

    publish(runtime, CASE_EVENTS["assigned"], case_data("assigned", petition, grid_id=None))
    publish(runtime, CASE_EVENTS["claimed"], case_data("claimed", petition))

    def steps():
        answer = client.get(f"/petitions/{petition['id']}/timeline", headers=headers).json
        # The petition and its steps are read in two statements: wait for both to show the claim.
        return answer if len(answer["steps"]) == 3 and answer["status"] == "claimed" else None
    timeline = wait_for(steps, message="the case steps on the timeline")
    assert [s["text"] for s in timeline["steps"]][1:] == ["已分派至县级统一受理平台", "工作人员已认领，正在办理"]
    assert timeline["status"] == "claimed"
