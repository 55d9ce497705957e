"""The resident's own view: the timeline from dispatch's events, withdraw, rating and rework."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from intake.testing import CASE_EVENTS, GRID_ID, case_data, feed, feed_case

from .conftest import outbox_events, submit


def journey(intake, petition, worker_id="w-1"):
    feed_case(intake, "opened", petition)
    feed_case(intake, "assigned", petition, offered_to=[worker_id])
    feed_case(intake, "claimed", petition, by=worker_id)
    feed_case(intake, "progressed", petition, by=worker_id)
    feed_case(intake, "escalated", petition)
    feed_case(intake, "whistled", petition, departments=["police", "judicial"])
    feed_case(intake, "reported_in", petition)
    feed_case(intake, "deadline_missed", petition)
    feed_case(intake, "resolved", petition, by=worker_id)


def test_every_step_of_the_case_reads_in_plain_chinese(intake, client, people):
    _, headers = people.resident()
    petition = submit(client, headers)
    journey(intake, petition)
    answer = client.get(f"/petitions/{petition['id']}/timeline", headers=headers)
    assert answer.headers["Content-Language"] == "zh-CN"
    texts = [s["text"] for s in answer.json["steps"]]
    assert texts == [
        "诉求已提交（小程序），等待分派", "已受理，正在分派", "已分派至 龙溪社区1号网格",
        "工作人员已认领，正在办理", "办理进展：已联系物业", "已上报至龙溪社区处理",
        "已吹哨，police、judicial 报到联合处理", "police 已报到", "办理超时，已督办", "已办结：已修复漏水管道",
    ]
    assert answer.json["status"] == "resolved"


def test_a_worker_leaving_a_reassignment_and_supervision_read_plainly_without_staff_names(intake, client, people):
    _, headers = people.resident()
    petition = submit(client, headers)
    feed_case(intake, "assigned", petition, offered_to=["worker-1"])
    feed_case(intake, "claimed", petition, by="worker-1")
    feed_case(intake, "handed_back", petition, handler="worker-1", offered_to=["head-1"])
    status = client.get(f"/petitions/{petition['id']}", headers=headers).json["status"]
    assert status == "assigned"  # nobody holds it now: the resident may withdraw again
    feed_case(intake, "handed_back", petition, handler=None, reason="offers_withdrawn", offered_to=["admin-1"])
    feed_case(intake, "reassigned", petition, by="head-1", to_handler="worker-2", reason="worker-2 knows it")
    feed_case(intake, "escalated", petition, reason="manual", by="admin-1", text="worker-2 is slow",
              notify=["worker-2"])
    answer = client.get(f"/petitions/{petition['id']}/timeline", headers=headers)
    texts = [s["text"] for s in answer.json["steps"]][3:]
    assert texts == ["原办理人员有变动，正在重新安排工作人员办理", "已改派其他工作人员办理", "已督办，由龙溪社区限期办理"]
    assert answer.json["status"] == "claimed"
    english = client.get(f"/petitions/{petition['id']}/timeline", headers=headers | {"Accept-Language": "en"})
    assert [s["text"] for s in english.json["steps"]][3:] == [
        "The worker handling it has changed; someone new is being arranged", "Passed to another worker",
        "Under supervision at the 龙溪社区 level, with a deadline"]
    everything = str(answer.json) + str(english.json)
    assert not any(name in everything for name in ("worker-1", "worker-2", "head-1", "admin-1", "slow"))


def test_the_timeline_speaks_english_on_request(intake, client, people):
    _, headers = people.resident()
    petition = submit(client, headers)
    feed_case(intake, "assigned", petition)
    feed_case(intake, "claimed", petition)
    answer = client.get(f"/petitions/{petition['id']}/timeline", headers=headers | {"Accept-Language": "en-GB,en;q=0.9"})
    assert answer.json["language"] == "en"
    assert [s["text"] for s in answer.json["steps"]] == [
        "Petition submitted (app); awaiting assignment", "Assigned to grid 龙溪社区1号网格",
        "A worker has claimed it and is on it"]


def test_the_timeline_honours_q_values_and_writes_a_new_due_time_in_local_time(intake, client, people):
    _, headers = people.resident()
    petition = submit(client, headers)
    due = datetime(2026, 12, 8, 13, 3, 0, 698590, tzinfo=UTC)
    feed(intake, CASE_EVENTS["progressed"],
         case_data("progressed", petition) | {"kind": "extension_approved", "text": "", "handle_due": due})
    url = f"/petitions/{petition['id']}/timeline"
    english = client.get(url, headers=headers | {"Accept-Language": "zh;q=0.1, en;q=0.9"})
    assert english.json["language"] == "en" and english.headers["Content-Language"] == "en"
    assert english.json["steps"][-1]["text"] == "More time approved; now due 8 Dec 2026, 21:03"
    chinese = client.get(url, headers=headers | {"Accept-Language": "en;q=0.2, zh-CN"})
    assert chinese.json["steps"][-1]["text"] == "延期已批准，新的办理期限 2026年12月8日 21:03"
    assert datetime.fromisoformat(chinese.json["steps"][-1]["at"]).utcoffset() is not None  # machine field: ISO


def test_status_follows_dispatch_and_never_goes_back_on_a_late_event(intake, client, people):
    _, headers = people.resident()
    petition = submit(client, headers)
    status = lambda: client.get(f"/petitions/{petition['id']}", headers=headers).json["status"]  # noqa: E731
    feed_case(intake, "assigned", petition)
    assert status() == "assigned"
    feed_case(intake, "claimed", petition)
    feed_case(intake, "assigned", petition)  # late redelivery of an older step
    assert status() == "claimed"
    feed_case(intake, "resolved", petition)
    feed_case(intake, "closed", petition)
    assert status() == "closed"
    detail = client.get(f"/petitions/{petition['id']}", headers=headers).json
    assert detail["grid_id"] == GRID_ID and detail["case_id"]


def test_a_redelivered_event_is_written_once(intake, client, people):
    import json

    from gridkit.events import Envelope
    from intake.testing import CASE_EVENTS, case_data

    _, headers = people.resident()
    petition = submit(client, headers)
    body = json.dumps(Envelope.new(CASE_EVENTS["claimed"], case_data("claimed", petition)).to_json())
    worker = intake.worker()
    sub = intake.spec.subscriptions.queues["intake.timeline"]
    assert worker.handle(sub, body, {}, {}) == "processed"
    assert worker.handle(sub, body, {}, {}) == "duplicate"
    steps = client.get(f"/petitions/{petition['id']}/timeline", headers=headers).json["steps"]
    assert [s["kind"] for s in steps].count("claimed") == 1


def test_the_reporter_withdraws_only_while_nobody_has_claimed_it(intake, client, people):
    reporter, headers = people.resident()
    petition = submit(client, headers)
    _, other = people.resident()
    assert client.post(f"/petitions/{petition['id']}/withdraw", headers=other).status_code == 403
    feed_case(intake, "assigned", petition)
    answer = client.post(f"/petitions/{petition['id']}/withdraw", headers=headers)
    assert answer.status_code == 200 and answer.json["status"] == "withdrawn"
    [event] = outbox_events(intake, "intake.petition.withdrawn.v1")
    assert event["data"]["reporter_id"] == reporter
    again = client.post(f"/petitions/{petition['id']}/withdraw", headers=headers)
    assert again.status_code == 409 and "already withdrawn" in again.json["detail"]
    claimed = submit(client, headers, separate=True)
    feed_case(intake, "claimed", claimed)
    refused = client.post(f"/petitions/{claimed['id']}/withdraw", headers=headers)
    assert refused.status_code == 409 and "claimed" in refused.json["detail"]


def test_only_the_reporter_rates_and_only_once_resolved(intake, client, people):
    reporter, headers = people.resident()
    petition = submit(client, headers)
    url = f"/petitions/{petition['id']}/rating"
    assert client.post(url, json={"rating": 5}, headers=headers).status_code == 409
    feed_case(intake, "resolved", petition)
    worker_id, worker = people.worker()
    assert client.post(url, json={"rating": 5}, headers=worker).status_code == 403
    _, other = people.resident()
    assert client.post(url, json={"rating": 5}, headers=other).status_code == 403
    assert client.post(url, json={"rating": 6}, headers=headers).status_code == 422
    rated = client.post(url, json={"rating": 4, "comment": "很及时"}, headers=headers)
    assert rated.status_code == 200 and rated.json["rating"] == 4
    [event] = outbox_events(intake, "intake.petition.rated.v1")
    assert event["data"]["rating"] == 4 and "很及时" not in str(event)
    assert client.post(url, json={"rating": 5}, headers=headers).status_code == 409


def test_an_unsatisfied_reporter_asks_for_rework_within_seven_days(intake, client, people):
    _, headers = people.resident()
    petition = submit(client, headers)
    url = f"/petitions/{petition['id']}/rework"
    feed_case(intake, "resolved", petition)
    assert client.post(url, json={"reason": "还在漏"}, headers=headers).status_code == 409  # not rated yet
    client.post(f"/petitions/{petition['id']}/rating", json={"rating": 1}, headers=headers)
    feed_case(intake, "closed", petition, rating=1)  # dispatch archives after the rating
    _, other = people.resident()
    assert client.post(url, json={"reason": "还在漏"}, headers=other).status_code == 403
    answer = client.post(url, json={"reason": "还在漏"}, headers=headers)
    assert answer.status_code == 200 and answer.json["status"] == "reopened"
    [event] = outbox_events(intake, "intake.petition.reopened.v1")
    assert event["data"]["reason"] == "还在漏"
    feed_case(intake, "reopened", petition)
    assert client.get(f"/petitions/{petition['id']}", headers=headers).json["status"] == "claimed"


def test_rework_is_refused_after_a_good_rating_or_after_seven_days(intake, client, people):
    _, headers = people.resident()
    happy = submit(client, headers)
    feed_case(intake, "resolved", happy)
    client.post(f"/petitions/{happy['id']}/rating", json={"rating": 4}, headers=headers)
    refused = client.post(f"/petitions/{happy['id']}/rework", json={"reason": "x"}, headers=headers)
    assert refused.status_code == 409 and "≤ 2" in refused.json["detail"]
    late = submit(client, headers, separate=True)
    feed_case(intake, "resolved", late, at=datetime.now(UTC) - timedelta(days=8))
    client.post(f"/petitions/{late['id']}/rating", json={"rating": 1}, headers=headers)
    refused = client.post(f"/petitions/{late['id']}/rework", json={"reason": "x"}, headers=headers)
    assert refused.status_code == 409 and "7 days" in refused.json["detail"]
