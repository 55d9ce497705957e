"""Who hears what, end to end through notify's handlers on PostgreSQL."""

import uuid

from sqlalchemy import select

from contracts.dispatch import (
    CASE_ASSIGNED,
    CASE_CLAIMED,
    CASE_CLOSED,
    CASE_ESCALATED,
    CASE_HANDED_BACK,
    CASE_OPENED,
    CASE_PROGRESSED,
    CASE_REASSIGNED,
    CASE_REOPENED,
    CASE_RESOLVED,
    CASE_UNATTENDED,
    CASE_WHISTLED,
    DEADLINE_APPROACHING,
    DEADLINE_MISSED,
)
from contracts.identity import ROLE_GRANTED, ROLE_REVOKED
from contracts.intake import PETITION_MERGED, PETITION_RATED
from contracts.points import REDEMPTION_EXPIRED, REDEMPTION_HANDED_OVER, REDEMPTION_HELD
from notify.rules import KINDS
from notify.templates import reference
from notify.testing import case_data, feed, notice_count, notices_of, soon


def kinds(runtime, user):
    return [n.kind for n in notices_of(runtime, user)]


def uid():
    return str(uuid.uuid4())


def test_a_case_offered_to_a_grid_reaches_each_offered_worker_inbox(notify_runtime):
    workers = [uid(), uid()]
    case = case_data()
    feed(notify_runtime, CASE_ASSIGNED, case | {"offered_to": workers, "claim_due": soon(), "by": None})
    for worker in workers:
        [notice] = notices_of(notify_runtime, worker)
        assert notice.kind == "case_offered" and notice.case_id == case["case_id"]
        assert "认领" in notice.title and not notice.critical
    assert kinds(notify_runtime, case["reporter_id"]) == []


def test_an_escalated_case_reaches_the_supervisors_it_is_offered_to(notify_runtime):
    supervisors = [uid()]
    feed(notify_runtime, CASE_ESCALATED, case_data(level="community") | {
        "from_level": "grid", "reason": "claim_deadline", "division_code": "DL-01-01",
        "offered_to": supervisors, "claim_due": soon()})
    [notice] = notices_of(notify_runtime, supervisors[0])
    assert notice.kind == "case_escalated" and "社区" in notice.title and "超时未认领" in notice.body


def test_the_resident_hears_of_every_step_of_their_case(notify_runtime):
    case = case_data()
    worker = uid()
    feed(notify_runtime, CASE_OPENED, case | {"category": "water_leak", "catch_all": False,
                                              "needs_approval": False, "approvers": []})
    feed(notify_runtime, CASE_CLAIMED, case | {"by": worker, "claim_seconds": 12.5, "handle_due": soon(600)})
    feed(notify_runtime, CASE_PROGRESSED, case | {"by": worker, "kind": "note", "text": "已联系物业维修",
                                                  "handle_due": None})
    feed(notify_runtime, CASE_PROGRESSED, case | {"by": worker, "kind": "extension_requested",
                                                  "text": None, "handle_due": None})
    feed(notify_runtime, CASE_RESOLVED, case | {"by": worker, "result": "水管已修好"})
    feed(notify_runtime, CASE_REOPENED, case | {"reason": "仍然漏水"})
    feed(notify_runtime, CASE_CLOSED, case | {"outcome": "rated", "rating": 5})
    resident = notices_of(notify_runtime, case["reporter_id"])
    assert [n.kind for n in resident] == ["case_opened", "case_claimed", "case_progressed", "case_resolved",
                                          "case_reopened", "case_closed"]
    assert "已联系物业维修" in resident[2].body and "水管已修好" in resident[3].body
    # the handler hears of the rework the resident asked for; not of their own claim
    assert kinds(notify_runtime, worker) == ["rework_requested"]


def test_a_merged_reporter_hears_their_petition_now_follows_the_kept_one(notify_runtime):
    reporter, kept = uid(), str(uuid.uuid4())
    feed(notify_runtime, PETITION_MERGED, {"petition_id": str(uuid.uuid4()), "into_petition_id": kept,
                                           "reporter_id": reporter, "by": uid(), "at": soon(0)})
    [notice] = notices_of(notify_runtime, reporter)
    assert notice.kind == "petition_merged" and reference(kept) in notice.body


def test_the_claimer_hears_the_residents_rating(notify_runtime):
    case, worker = case_data(), uid()
    feed(notify_runtime, CASE_CLAIMED, case | {"by": worker, "claim_seconds": 3.0, "handle_due": soon()})
    feed(notify_runtime, PETITION_RATED, {"petition_id": case["petition_id"], "reporter_id": case["reporter_id"],
                                          "rating": 4, "at": soon(0)})
    [notice] = notices_of(notify_runtime, worker)
    assert notice.kind == "petition_rated" and "4" in notice.body


def test_a_whistle_reaches_every_officer_of_each_whistled_department_and_is_critical(notify_runtime):
    police, police2, judicial, revoked, other = uid(), uid(), uid(), uid(), uid()
    for grant_id, (user, scope) in enumerate([(police, "department:police"), (police2, "department:police"),
                                              (judicial, "department:judicial"), (revoked, "department:police"),
                                              (other, "department:market")], start=1):
        feed(notify_runtime, ROLE_GRANTED, {"grant_id": grant_id, "user_id": user, "role": "dept_officer",
                                            "scope": scope, "by": None})
    feed(notify_runtime, ROLE_GRANTED, {"grant_id": 99, "user_id": other, "role": "grid_worker",
                                        "scope": "department:police", "by": None})
    feed(notify_runtime, ROLE_REVOKED, {"grant_id": 4, "user_id": revoked, "role": "dept_officer",
                                        "scope": "department:police", "by": None})
    feed(notify_runtime, CASE_WHISTLED, case_data(level="street") | {
        "whistle_id": "w1", "departments": ["police", "judicial"], "report_in_due": soon(120), "by": uid()})
    for officer in (police, police2, judicial):
        [notice] = notices_of(notify_runtime, officer)
        assert notice.kind == "case_whistled" and notice.critical and "police、judicial" in notice.body
    assert kinds(notify_runtime, revoked) == [] and kinds(notify_runtime, other) == []


def test_a_missed_deadline_reaches_the_supervisors_named_and_is_critical(notify_runtime):
    holder, supervisor = uid(), uid()
    deadline = {"step": "handle", "due": soon(-5), "department": None, "notify": [holder, supervisor]}
    feed(notify_runtime, DEADLINE_APPROACHING, case_data() | deadline | {"notify": [holder]})
    feed(notify_runtime, DEADLINE_MISSED, case_data() | deadline)
    assert kinds(notify_runtime, holder) == ["deadline_approaching", "deadline_missed"]
    [missed] = notices_of(notify_runtime, supervisor)
    assert missed.kind == "deadline_missed" and missed.critical and "办理" in missed.body


def test_a_redelivered_event_writes_no_second_notice(notify_runtime):
    worker = uid()
    data = case_data() | {"offered_to": [worker], "claim_due": soon(), "by": None}
    envelope = feed(notify_runtime, CASE_ASSIGNED, data)
    feed(notify_runtime, CASE_ASSIGNED, data, envelope=envelope)
    feed(notify_runtime, CASE_ASSIGNED, data, envelope=envelope)
    assert len(notices_of(notify_runtime, worker)) == 1 and notice_count(notify_runtime) == 1


def test_every_notice_about_a_case_names_it_the_same_way(notify_runtime):
    """Each notice kind, reached through the handlers: the title ends with the case's number,
    the body names it, and the notice points at the case, whichever service's event it came from."""
    case, kept = case_data(), case_data()
    worker, officer, supervisor = uid(), uid(), uid()
    opened = {"category": "water_leak", "catch_all": False, "needs_approval": False, "approvers": []}
    feed(notify_runtime, ROLE_GRANTED, {"grant_id": 501, "user_id": officer, "role": "dept_officer",
                                        "scope": "department:police", "by": None})
    feed(notify_runtime, CASE_OPENED, kept | opened)
    feed(notify_runtime, CASE_OPENED, case | opened)
    feed(notify_runtime, CASE_ASSIGNED, case | {"offered_to": [worker], "claim_due": soon(), "by": None})
    feed(notify_runtime, CASE_ESCALATED, case | {"from_level": "grid", "level": "community",
                                                 "reason": "claim_deadline", "division_code": "DL-01-01",
                                                 "offered_to": [supervisor], "claim_due": soon()})
    feed(notify_runtime, CASE_CLAIMED, case | {"by": worker, "claim_seconds": 3.0, "handle_due": soon(600)})
    feed(notify_runtime, CASE_PROGRESSED, case | {"by": worker, "kind": "note", "text": "已联系物业",
                                                  "handle_due": None})
    feed(notify_runtime, CASE_WHISTLED, case | {"whistle_id": "w1", "departments": ["police"],
                                                "report_in_due": soon(120), "by": supervisor})
    deadline = {"step": "handle", "due": soon(-5), "department": None, "notify": [worker, supervisor]}
    feed(notify_runtime, DEADLINE_APPROACHING, case | deadline)
    feed(notify_runtime, DEADLINE_MISSED, case | deadline)
    feed(notify_runtime, CASE_ESCALATED, case | {"from_level": "grid", "level": "community", "reason": "manual",
                                                 "division_code": None, "offered_to": [], "claim_due": soon(),
                                                 "by": supervisor, "text": "第三次投诉", "due": soon(60),
                                                 "notify": [worker]})
    feed(notify_runtime, CASE_REASSIGNED, case | {"by": supervisor, "from_handler": worker, "to_handler": officer,
                                                  "reason": "原网格员休假", "handle_due": soon(600)})
    feed(notify_runtime, CASE_HANDED_BACK, case | {"handler": officer, "reason": "handler_left",
                                                   "offered_to": [worker], "claim_due": soon(600)})
    feed(notify_runtime, CASE_UNATTENDED, case | {"reason": "no_approver", "catch_all": False,
                                                  "notify": [supervisor]})
    feed(notify_runtime, CASE_CLAIMED, case | {"by": worker, "claim_seconds": 3.0, "handle_due": soon(600)})
    feed(notify_runtime, CASE_RESOLVED, case | {"by": worker, "result": "已修复"})
    feed(notify_runtime, PETITION_RATED, {"petition_id": case["petition_id"], "reporter_id": case["reporter_id"],
                                          "rating": 2, "at": soon(0)})
    feed(notify_runtime, CASE_REOPENED, case | {"reason": "仍然漏水"})
    feed(notify_runtime, CASE_CLOSED, case | {"outcome": "merged", "rating": None})
    feed(notify_runtime, PETITION_MERGED, {"petition_id": case["petition_id"], "into_petition_id": kept["petition_id"],
                                           "reporter_id": case["reporter_id"], "by": supervisor, "at": soon(0)})
    notices = [n for person in (case["reporter_id"], worker, officer, supervisor)
               for n in notices_of(notify_runtime, person)]
    # points' notices name no case
    assert {n.kind for n in notices} == {kind for kind in KINDS if not kind.startswith(("points_", "redemption_"))}
    ref = reference(case["case_id"])
    for notice in notices:
        assert notice.title.endswith(f" {ref}"), (notice.kind, notice.title)
        assert f"工单 {ref}" in notice.body, (notice.kind, notice.body)
        assert notice.case_id == case["case_id"], notice.kind
    [merged] = [n for n in notices if n.kind == "petition_merged"]
    assert f"工单 {reference(kept['case_id'])}" in merged.body


def test_supervisors_moving_a_case_reach_both_handlers_and_rework_follows_the_new_one(notify_runtime):
    case, first, second, head = case_data(), uid(), uid(), uid()
    feed(notify_runtime, CASE_CLAIMED, case | {"by": first, "claim_seconds": 1.0, "handle_due": soon(600)})
    feed(notify_runtime, CASE_REASSIGNED, case | {"by": head, "from_handler": first, "to_handler": second,
                                                  "reason": "原网格员休假", "handle_due": soon(600)})
    [taken] = notices_of(notify_runtime, first)
    [given] = notices_of(notify_runtime, second)
    assert (taken.kind, given.kind) == ("case_reassigned_away", "case_reassigned")
    assert "原网格员休假" in given.body and reference(case["case_id"]) in taken.title
    feed(notify_runtime, CASE_REOPENED, case | {"reason": "仍然漏水"})
    assert kinds(notify_runtime, second)[-1] == "rework_requested"
    assert kinds(notify_runtime, first) == ["case_reassigned_away"]

    # the new handler leaves: the grid head gets it back, the resident hears the handler changed
    feed(notify_runtime, CASE_HANDED_BACK, case | {"handler": second, "reason": "handler_left",
                                                   "offered_to": [head], "claim_due": soon(600)})
    assert kinds(notify_runtime, head) == ["case_handed_back"]
    assert kinds(notify_runtime, case["reporter_id"])[-1] == "case_handler_changed"
    feed(notify_runtime, CASE_REOPENED, case | {"reason": "还是不行"})
    assert kinds(notify_runtime, second).count("rework_requested") == 1  # nobody holds it now


def test_a_case_nobody_can_take_alerts_the_county_admins_as_a_critical_notice(notify_runtime):
    admin = uid()
    feed(notify_runtime, CASE_UNATTENDED, case_data(grid_id=None, level="county") | {
        "reason": "nobody_to_offer", "catch_all": True, "notify": [admin]})
    [notice] = notices_of(notify_runtime, admin)
    assert notice.kind == "case_unattended" and notice.critical and "无人可派" in notice.body


def test_a_case_opened_claimed_and_reopened_in_one_batch_tells_its_handler(notify_runtime, caplog):
    # One transaction for the three (as the worker takes what waits on the queue): the case
    # the first event remembered is the one the next two find, not written twice.
    from gridkit.consumer import Incoming
    from notify.tables import CaseHandler
    from notify.testing import envelope_body, queue_for

    case, worker = case_data(), uid()
    worker_runtime = notify_runtime.worker()
    queue = notify_runtime.spec.subscriptions.queues[queue_for(notify_runtime.spec, CASE_OPENED)]
    batch = [Incoming(queue, envelope_body(event_type, case | data)[0], {}) for event_type, data in (
        (CASE_OPENED, {"category": "water_leak", "catch_all": False, "needs_approval": False, "approvers": []}),
        (CASE_CLAIMED, {"by": worker, "claim_seconds": 30.0, "handle_due": soon()}),
        (CASE_REOPENED, {"reason": "漏水未修好"}),
    )]
    with caplog.at_level("INFO", logger="gridkit.consumer"):
        assert worker_runtime.handle_batch(batch) == ["processed"] * 3
    assert not [r for r in caplog.records if "rolled back" in r.getMessage()]  # handled as one batch
    assert kinds(notify_runtime, worker) == ["rework_requested"]
    assert kinds(notify_runtime, case["reporter_id"]) == ["case_opened", "case_claimed", "case_reopened"]
    with notify_runtime.db.sessions() as session:
        [row] = session.scalars(select(CaseHandler).where(CaseHandler.case_id == case["case_id"])).all()
        assert (row.petition_id, row.handler_id) == (case["petition_id"], worker)


def test_residents_hear_of_points_earned_and_expired_once_per_event(notify_runtime):
    from contracts.points import ACCOUNT_EXPIRED, AWARD_GRANTED

    mother, son = uid(), uid()
    earned = {"community": "DL-01-01", "account_id": 4, "kind": "household", "holder": "31", "amount": 10,
              "balance": 130, "notify": [mother, son], "at": soon(0), "transfer_id": uid(), "reason": "hygiene",
              "rule_id": uid()}
    envelope = feed(notify_runtime, AWARD_GRANTED, earned)
    feed(notify_runtime, AWARD_GRANTED, earned, envelope=envelope)  # redelivered
    feed(notify_runtime, ACCOUNT_EXPIRED, {"community": "DL-01-01", "account_id": 5, "kind": "person",
                                           "holder": son, "amount": 20, "balance": 0, "notify": [son],
                                           "at": soon(0), "transfer_id": uid(), "earned_before": soon(0)})
    assert kinds(notify_runtime, mother) == ["points_earned"]
    assert kinds(notify_runtime, son) == ["points_earned", "points_expired"]
    assert notices_of(notify_runtime, mother)[0].body == "因评为清洁户获得 10 积分，账户余额 130 积分。"


def test_a_resident_hears_of_her_redemption_held_handed_over_and_expired(notify_runtime):
    resident, keeper = uid(), uid()
    redemption = {"redemption_id": uid(), "supermarket_id": 3, "supermarket": "龙泉社区积分超市",
                  "community": "DL-01-01", "resident": resident, "amount": 30, "pieces": 2,
                  "expires_at": soon(2880), "at": soon(0)}
    feed(notify_runtime, REDEMPTION_HELD, redemption)
    feed(notify_runtime, REDEMPTION_HANDED_OVER, redemption | {"by": keeper})
    feed(notify_runtime, REDEMPTION_EXPIRED, redemption | {"redemption_id": uid(), "by": None})
    notices = notices_of(notify_runtime, resident)
    assert [n.kind for n in notices] == ["redemption_held", "redemption_handed_over", "redemption_expired"]
    assert "龙泉社区积分超市" in notices[0].body and "30 积分" in notices[0].body
    assert notices[0].title.endswith(reference(redemption["redemption_id"]))
    assert notices_of(notify_runtime, keeper) == []
