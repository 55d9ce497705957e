"""One-time codes: identity asks (identity.code.issued), notify texts them at once through
the SMS gateway; expired codes are not sent; the number is never kept or logged in clear."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, inspect, select, text

from contracts.identity import CODE_ISSUED, CODE_PURPOSE, RECIPIENT_PURPOSE, TRANSIT_CONTEXT
from gridkit.crypto import DataKey
from gridkit.testkit import wait_for
from identity.service import spec as identity_spec
from notify.service import spec as notify_spec
from notify.tables import CodeText
from notify.testing import feed

from .conftest import SMS_KEY

PHONE = "13912345678"


def code_event(runtime, *, phone=PHONE, code="246810", purpose="login", message="code", language="zh-CN",
               expires_in=timedelta(minutes=5)) -> dict:
    """identity.code.issued as identity writes it, sealed with the transit key ``runtime`` shares."""
    transit = DataKey.from_settings(runtime.settings, context=TRANSIT_CONTEXT)
    return {"recipient_sealed": transit.seal(phone, RECIPIENT_PURPOSE),
            "code_sealed": transit.seal(code, CODE_PURPOSE) if code else None,
            "purpose": purpose, "message": message, "language": language,
            "expires_at": datetime.now(UTC) + expires_in}


def pending_texts(runtime) -> int:
    with runtime.db.sessions() as session:
        return session.scalar(select(func.count()).select_from(CodeText))


def test_a_code_asked_for_in_identity_is_texted_at_once_through_the_gateway(make_runtime, channel_settings,
                                                                              sms_gateway, caplog):
    notify = make_runtime(notify_spec, bus="amqp", extra=channel_settings)  # its queue is bound first
    identity = make_runtime(identity_spec, bus="amqp")
    identity.start_background()
    notify.start_background()
    client = identity.app(testing=True).test_client()
    with caplog.at_level(logging.DEBUG):
        assert client.post("/codes", json={"phone": PHONE, "purpose": "register"}).status_code == 202
        code = sms_gateway.code_for(PHONE, timeout=30)
    [sms] = sms_gateway.to(PHONE)
    assert sms["body"]["text"].startswith("【网格治理】验证码 " + code) and "用于注册" in sms["body"]["text"]
    assert sms["headers"]["X-Api-Key"] == SMS_KEY and sms["headers"]["Idempotency-Key"].startswith("code-")
    # The resident registers with the code they received.
    assert client.post("/residents", json={"phone": PHONE, "code": code, "name": "王居民",
                                           "password": "correct horse battery"}).status_code == 201
    # notify keeps nothing once the text is sent, and never logged or stored the number.
    wait_for(lambda: pending_texts(notify) == 0, message="the sent text's row to go")
    with notify.db.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            dump = json.dumps([list(map(str, r)) for r in conn.execute(text(f'SELECT * FROM "{table}"'))])
            assert PHONE[3:] not in dump and code not in dump, table
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert PHONE not in logged and code not in logged


def test_an_owner_is_told_in_english_that_their_number_already_has_an_account(notify_runtime, deliverer,
                                                                              sms_gateway):
    feed(notify_runtime, CODE_ISSUED, code_event(notify_runtime, code=None, purpose="register",
                                                 message="account_exists", language="en"))
    assert deliverer.run_once() == 1
    [text_] = sms_gateway.texts_to(PHONE)
    assert "already has an account" in text_ and not sms_gateway.CODE.search(text_)


def test_an_expired_code_is_not_sent(notify_runtime, deliverer, sms_gateway):
    feed(notify_runtime, CODE_ISSUED, code_event(notify_runtime, expires_in=timedelta(seconds=-1)))
    assert pending_texts(notify_runtime) == 0
    assert deliverer.run_once() == 0 and sms_gateway.requests == []


def test_a_code_is_retried_after_a_gateway_failure_and_then_sent_once(notify_runtime, deliverer, sms_gateway):
    sms_gateway.fail_next = 1
    feed(notify_runtime, CODE_ISSUED, code_event(notify_runtime, code="135791", language="en"))
    deliverer.run_once()
    assert pending_texts(notify_runtime) == 1
    wait_for(lambda: deliverer.run_once(), message="the retry to come due")
    assert [r["body"]["text"] for r in sms_gateway.to(PHONE)][-1].startswith("gridgov: your code is 135791")
    assert len(sms_gateway.to(PHONE)) == 2 and pending_texts(notify_runtime) == 0
    assert deliverer.run_once() == 0


def test_a_code_that_expires_while_the_gateway_fails_is_dropped_unsent(notify_runtime, deliverer, sms_gateway):
    sms_gateway.fail_always = True
    event = code_event(notify_runtime, expires_in=timedelta(seconds=1))
    feed(notify_runtime, CODE_ISSUED, event)
    assert deliverer.run_once() == 1 and len(sms_gateway.requests) == 1  # failed, to be retried
    wait_for(lambda: datetime.now(UTC) > event["expires_at"], message="the code to expire")
    sms_gateway.fail_always = False  # the gateway is back, but too late for this code
    assert deliverer.run_once() == 0
    assert pending_texts(notify_runtime) == 0 and len(sms_gateway.requests) == 1


def test_a_code_the_gateway_refuses_is_dropped_at_once(notify_runtime, deliverer, sms_gateway):
    sms_gateway.server.RequestHandlerClass.do_POST = lambda self: (
        self.rfile.read(int(self.headers["Content-Length"])), self.send_response(400), self.end_headers())
    feed(notify_runtime, CODE_ISSUED, code_event(notify_runtime))
    assert deliverer.run_once() == 1
    assert pending_texts(notify_runtime) == 0 and deliverer.run_once() == 0


def test_a_redelivered_event_is_texted_once(notify_runtime, deliverer, sms_gateway):
    envelope = feed(notify_runtime, CODE_ISSUED, code_event(notify_runtime))
    feed(notify_runtime, CODE_ISSUED, {}, envelope=envelope)
    deliverer.run_once()
    assert len(sms_gateway.to(PHONE)) == 1


@pytest.mark.parametrize("bus, logged", [("memory", True), ("amqp", False)])
def test_without_a_gateway_only_embedded_mode_logs_the_code(make_runtime, caplog, bus, logged):
    notify = make_runtime(notify_spec, bus=bus)  # no GRIDGOV_SMS_URL
    with caplog.at_level(logging.DEBUG):
        feed(notify, CODE_ISSUED, code_event(notify, code="975310"))
    assert pending_texts(notify) == 0
    lines = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert ("975310" in lines) is logged and PHONE not in lines
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "SMS gateway" in r.getMessage()]
    assert warnings and (("139****5678" in warnings[0]) is logged)
