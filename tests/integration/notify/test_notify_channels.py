"""Email over a real SMTP server on loopback, SMS through a local HTTP gateway,
retries with backoff, dead deliveries and notify.delivery.failed."""

import json
import uuid

import pytest
from sqlalchemy import select

from contracts.dispatch import CASE_ASSIGNED, DEADLINE_MISSED
from gridkit.testkit import wait_for
from notify.tables import Delivery, Notice, outbox
from notify.testing import case_data, feed, soon

from .conftest import SMS_KEY


def offer(runtime, *workers):
    return feed(runtime, CASE_ASSIGNED, case_data() | {"offered_to": list(workers), "claim_due": soon(), "by": None})


def miss_deadline(runtime, *people):
    return feed(runtime, DEADLINE_MISSED, case_data() | {"step": "handle", "due": soon(-1), "department": None,
                                                        "notify": list(people)})


def deliveries_of(runtime, user):
    with runtime.db.sessions() as session:
        return list(session.scalars(select(Delivery).where(Delivery.recipient_id == user).order_by(Delivery.id)))


def failed_events(runtime):
    with runtime.db.sessions() as session:
        rows = session.execute(select(outbox.table.c.routing_key, outbox.table.c.body)).all()
    return [json.loads(r.body)["data"] for r in rows if r.routing_key == "notify.delivery.failed.v1"]


def test_an_offer_is_emailed_in_chinese_by_default(notify_runtime, deliverer, smtp_server, person):
    worker, _ = person(email="li.na@example.cn")
    offer(notify_runtime, worker)
    assert deliverer.run_once() == 1
    [message] = smtp_server.to("li.na@example.cn")
    assert message["Subject"].startswith("新工单待认领") and message["From"] == "notify@gridgov.test"
    assert "请在" in message.get_content()
    [delivery] = deliveries_of(notify_runtime, worker)
    assert (delivery.status, delivery.attempts, delivery.provider_ref) == ("sent", 1, message["Message-ID"])


def test_a_user_who_chose_english_gets_english_email(notify_runtime, deliverer, smtp_server, person):
    worker, _ = person(email="tom@example.com", language="en")
    offer(notify_runtime, worker)
    deliverer.run_once()
    [message] = smtp_server.to("tom@example.com")
    assert message["Subject"].startswith("New case to claim") and "claim it before" in message.get_content()


def test_a_muted_kind_is_not_emailed_but_a_muted_critical_one_still_is(
        notify_runtime, deliverer, smtp_server, person, client):
    worker, headers = person(email="wang@example.cn", muted_kinds=["case_offered", "deadline_approaching"])
    # the API refuses to mute a critical kind; the rules ignore such a mute anyway (unit tests)
    assert client.put("/me/preferences", json={"muted_kinds": ["deadline_missed"]},
                      headers=headers).status_code == 422
    offer(notify_runtime, worker)
    miss_deadline(notify_runtime, worker)
    deliverer.run_once()
    assert [m["Subject"][:3] for m in smtp_server.to("wang@example.cn")] == ["已超时"]
    assert [d.kind for d in deliveries_of(notify_runtime, worker)] == ["deadline_missed"]


def test_critical_notices_go_even_over_a_channel_switched_off(notify_runtime, deliverer, sms_gateway, person):
    supervisor, _ = person(phone="13700000001", channels={"sms": False, "email": False})
    offer(notify_runtime, supervisor)
    miss_deadline(notify_runtime, supervisor)
    deliverer.run_once()
    [sms] = sms_gateway.to("13700000001")
    assert sms["body"]["text"].startswith("已超时")
    assert sms["headers"]["X-Api-Key"] == SMS_KEY and sms["headers"]["Idempotency-Key"].startswith("delivery-")


def test_an_sms_is_retried_after_a_gateway_failure_and_then_sent(notify_runtime, deliverer, sms_gateway, person):
    worker, _ = person(phone="13600000002", channels={"sms": True, "email": False})
    sms_gateway.fail_next = 1
    offer(notify_runtime, worker)
    deliverer.run_once()
    [delivery] = deliveries_of(notify_runtime, worker)
    assert (delivery.status, delivery.attempts) == ("pending", 1) and "503" in delivery.last_error
    wait_for(lambda: deliverer.run_once(), message="the retry to come due")
    [delivery] = deliveries_of(notify_runtime, worker)
    assert (delivery.status, delivery.attempts, delivery.provider_ref) == ("sent", 2, "sms-2")
    assert len(sms_gateway.to("13600000002")) == 2


def test_a_failing_sms_dies_after_n_attempts_while_another_users_email_goes_through(
        notify_runtime, deliverer, sms_gateway, smtp_server, person):
    texter, _ = person(phone="13500000003", channels={"sms": True, "email": False})
    reader, _ = person(email="reader@example.cn")
    sms_gateway.fail_always = True
    offer(notify_runtime, texter, reader)
    deliverer.run_once()
    assert len(smtp_server.to("reader@example.cn")) == 1  # not held up by the failing SMS
    [reader_delivery] = deliveries_of(notify_runtime, reader)
    assert reader_delivery.status == "sent"

    def dead():
        deliverer.run_once()
        return deliveries_of(notify_runtime, texter)[0].status == "dead"
    wait_for(dead, message="the SMS delivery to die")
    [delivery] = deliveries_of(notify_runtime, texter)
    assert delivery.attempts == 3 and len(sms_gateway.to("13500000003")) == 3
    [event] = failed_events(notify_runtime)
    assert event == event | {"delivery_id": str(delivery.id), "recipient_id": texter, "channel": "sms",
                             "template": "case_offered", "attempts": 3}
    assert "503" in event["reason"]
    assert deliverer.run_once() == 0  # dead stays dead


def test_the_background_loop_delivers_as_soon_as_the_notice_commits(notify_runtime, smtp_server, person):
    worker, _ = person(email="fast@example.cn")
    notify_runtime.start_background()
    offer(notify_runtime, worker)
    wait_for(lambda: smtp_server.to("fast@example.cn"), timeout=5, message="the email")


def test_an_sms_the_gateway_refuses_dies_at_once_without_retries(notify_runtime, deliverer, sms_gateway, person):
    worker, _ = person(phone="13400000004", channels={"sms": True, "email": False})
    offer(notify_runtime, worker)
    sms_gateway.server.RequestHandlerClass.do_POST = lambda self: (
        self.rfile.read(int(self.headers["Content-Length"])), self.send_response(422), self.end_headers())
    deliverer.run_once()
    [delivery] = deliveries_of(notify_runtime, worker)
    assert (delivery.status, delivery.attempts) == ("dead", 1) and "422" in delivery.last_error
    assert [e["delivery_id"] for e in failed_events(notify_runtime)] == [str(delivery.id)]


@pytest.mark.parametrize("db", ["postgres", "sqlite"])
def test_each_person_of_an_event_gets_their_own_language_and_channels(make_runtime, channel_settings, tokens, db):
    # Everyone an event reaches is looked up at once (preferences and contacts, either may be
    # missing): each still gets what their own rows say.
    from notify.service import spec

    runtime = make_runtime(spec, db=db, extra=channel_settings)
    client = runtime.app(testing=True).test_client()
    people = {}
    for name, contacts, preferences in (("english_only", None, {"language": "en"}),
                                        ("email_only", {"email": "e@example.cn"}, None),
                                        ("both", {"email": "b@example.com"}, {"language": "en"}),
                                        ("neither", None, None)):
        user_id = str(uuid.uuid4())
        headers = tokens.header(("grid_worker", "grid:7"), sub=user_id)
        if contacts:
            assert client.put("/me/contacts", json=contacts, headers=headers).status_code == 200
        if preferences:
            assert client.put("/me/preferences", json=preferences, headers=headers).status_code == 200
        people[name] = user_id
    offer(runtime, *people.values())
    titles = {}
    with runtime.db.sessions() as session:
        for name, user_id in people.items():
            [notice] = session.scalars(select(Notice).where(Notice.recipient_id == user_id)).all()
            titles[name] = notice.title
    assert titles["english_only"].startswith("New case") and titles["both"].startswith("New case")
    assert titles["email_only"].startswith("新工单") and titles["neither"].startswith("新工单")
    channels = {name: [d.channel for d in deliveries_of(runtime, user_id)] for name, user_id in people.items()}
    assert channels == {"english_only": [], "email_only": ["email"], "both": ["email"], "neither": []}
