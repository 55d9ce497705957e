"""PIPL in notify: her contacts, preferences and inbox in her download; erased by
identity's event (through the kit's accounts queue) and nothing more written for her;
operators' reads of deliveries audited; notices kept for a retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text, update

from contracts.dispatch import CASE_ASSIGNED, CASE_CLOSED, CASE_OPENED, CASE_REOPENED
from contracts.identity import USER_ERASED
from gridkit.testkit import wait_for
from notify import retention
from notify.tables import Contact, Delivery, Notice, Preference
from notify.testing import case_data, feed, notices_of, soon

EMAIL, PHONE = "lin.xiaoyan@example.cn", "13987654321"


def count(runtime, model, *where) -> int:
    with runtime.db.sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def opened(case: dict) -> dict:
    return case | {"category": "water_leak", "catch_all": False, "needs_approval": False, "approvers": []}


def test_erased_by_identitys_event_she_leaves_no_contact_notice_or_delivery_and_hears_nothing_more(
        notify_runtime, client, person, deliverer, smtp_server):
    her, her_h = person(("resident", "county"), email=EMAIL, phone=PHONE, language="en")
    worker, _ = person()
    case = case_data(reporter_id=her)
    feed(notify_runtime, CASE_OPENED, opened(case))
    feed(notify_runtime, CASE_ASSIGNED, case | {"offered_to": [worker], "claim_due": soon(), "by": None})
    deliverer.run_once()
    assert smtp_server.to(EMAIL)

    part = client.get("/me/personal-data", headers=her_h)
    assert part.status_code == 200, part.json
    data = part.json["data"]
    assert data["contacts"]["email"] == EMAIL and data["contacts"]["phone"] == PHONE
    assert data["preferences"]["language"] == "en"
    assert [n["kind"] for n in data["notices"]] == ["case_opened"]
    assert {d["channel"] for d in data["deliveries"]} == {"email"}
    assert data["notices"][0]["created_at"].endswith("+08:00")

    feed(notify_runtime, USER_ERASED, {"user_id": her, "kind": "resident", "by": None, "at": datetime.now(UTC)})

    assert count(notify_runtime, Contact, Contact.user_id == her) == 0
    assert notices_of(notify_runtime, her) == []
    assert count(notify_runtime, Delivery, Delivery.recipient_id == her) == 0
    with notify_runtime.db.sessions() as session:
        marker = session.get(Preference, her)
        assert marker.erased_at is not None and marker.language == "zh-CN" and marker.channels == "{}"
    assert [n.kind for n in notices_of(notify_runtime, worker)] == ["case_offered"]  # staff's stay
    # Her case goes on: the worker still hears of it, she hears nothing.
    feed(notify_runtime, CASE_REOPENED, case | {"reason": "仍然漏水"})
    feed(notify_runtime, CASE_CLOSED, case | {"outcome": "rated", "rating": 4})
    assert notices_of(notify_runtime, her) == []
    # Her tokens are refused by the kit from the moment of the erasure (each process reads
    # the revocations at most once a second).
    wait_for(lambda: client.get("/me/personal-data", headers=her_h).status_code == 401, timeout=5,
             message="her token to be refused")


def test_an_operator_reading_deliveries_leaves_a_line_per_person_on_the_page(notify_runtime, client, person,
                                                                            deliverer, tokens):
    people = [person(("resident", "county"), email=f"p{n}@example.cn")[0] for n in range(2)]
    for someone in people:
        feed(notify_runtime, CASE_OPENED, opened(case_data(reporter_id=someone)))
    operator_id = "operator-1"
    operator = tokens.header(("county_admin", "county"), sub=operator_id)
    assert len(client.get("/deliveries", headers=operator).json["items"]) == 2
    with notify_runtime.db.engine.connect() as conn:
        lines = conn.execute(text("SELECT actor_id, action, subject_id FROM audit_trail")).all()
    assert sorted(tuple(line) for line in lines) == sorted((operator_id, "read_deliveries", p) for p in people)
    auditor = tokens.header(("auditor", "county"))
    assert len(client.get("/audit", headers=auditor).json["items"]) == 2
    assert client.get("/audit", headers=operator).status_code == 403


def test_notices_go_with_their_deliveries_a_retention_after_they_were_written(notify_runtime, person):
    her, _ = person(("resident", "county"), email=EMAIL)
    old, recent = case_data(reporter_id=her), case_data(reporter_id=her)
    feed(notify_runtime, CASE_OPENED, opened(old))
    feed(notify_runtime, CASE_OPENED, opened(recent))
    with notify_runtime.db.transaction() as session:
        session.execute(update(Notice).where(Notice.case_id == old["case_id"]).values(
            created_at=datetime.now(UTC) - timedelta(days=181)))
    assert notify_runtime.extras["notice_retention_days"] == 180
    assert count(notify_runtime, Delivery) == 2
    assert retention.purge(notify_runtime) == 1
    assert [n.case_id for n in notices_of(notify_runtime, her)] == [recent["case_id"]]
    assert count(notify_runtime, Delivery) == 1
    assert retention.purge(notify_runtime) == 0


def test_the_notice_retention_is_configured(make_runtime):
    from notify.service import spec

    runtime = make_runtime(spec, db="sqlite", extra={"GRIDGOV_NOTICE_RETENTION_DAYS": "30"})
    assert runtime.extras["notice_retention_days"] == 30
