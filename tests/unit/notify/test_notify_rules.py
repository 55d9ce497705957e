"""The rules, templates and helpers of notify, without servers."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from contracts.dispatch import (
    CASE_CLAIMED,
    CASE_ESCALATED,
    CASE_HANDED_BACK,
    CASE_REASSIGNED,
    CASE_REOPENED,
    CASE_UNATTENDED,
    CASE_WHISTLED,
)
from contracts.intake import PETITION_RATED
from contracts.points import (
    REDEMPTION_CANCELLED,
    REDEMPTION_EXPIRED,
    REDEMPTION_HANDED_OVER,
    REDEMPTION_HELD,
)
from gridkit.crypto import DataKey, Unopenable, mask_phone
from notify import rules, templates
from notify.api import mask_email
from notify.config import NotifyConfig
from notify.deliveries import backoff
from notify.handlers import with_cases

AT = datetime(2025, 3, 1, 1, 30, tzinfo=UTC)


class Directory(rules.Directory):
    def officers_of(self, department):
        return {"police": ["p1", "p2"], "judicial": ["j1", "p2"]}.get(department, [])

    def handler_of_case(self, case_id):
        return "worker-1"

    def handler_of_petition(self, petition_id):
        return "worker-1"

    def case_of_petition(self, petition_id):
        return {"9a8b7c6d-1111": "5f0c1a2b-0000", "abcd-1": "77aa88bb-2222"}.get(petition_id)


def case(**extra):
    return {"case_id": "5f0c1a2b-0000", "petition_id": "9a8b7c6d-1111", "reporter_id": "resident-1",
            "network": "security", "grid_id": 7, "level": "grid", "at": AT} | extra


def test_whistled_officers_of_every_department_each_hear_once_and_it_is_critical():
    addressed = rules.address(CASE_WHISTLED.type, case(departments=["police", "judicial"], by="admin"),
                              Directory())
    assert [(a.recipient_id, a.kind, a.critical) for a in addressed] == [
        ("p1", "case_whistled", True), ("p2", "case_whistled", True), ("j1", "case_whistled", True)]


def test_nobody_is_told_of_their_own_action():
    assert rules.address(CASE_CLAIMED.type, case(reporter_id="w", by="w"), Directory()) == []


def test_a_reopened_case_reaches_the_resident_and_the_handler():
    addressed = rules.address(CASE_REOPENED.type, case(reason="still leaking"), Directory())
    assert {(a.recipient_id, a.kind) for a in addressed} == {("resident-1", "case_reopened"),
                                                             ("worker-1", "rework_requested")}


def test_a_rating_with_no_known_handler_reaches_nobody():
    class Empty(Directory):
        def handler_of_petition(self, petition_id):
            return None

    assert rules.address(PETITION_RATED.type, {"petition_id": "p", "reporter_id": "r", "rating": 5, "at": AT},
                         Empty()) == []



def test_a_muted_kind_goes_nowhere_outside_but_a_muted_critical_kind_still_goes():
    prefs = rules.Preferences(muted_kinds=frozenset({"case_offered", "deadline_missed"}),
                              channels={"email": True, "sms": True})
    both = {"email", "sms"}
    assert rules.channels_for("case_offered", prefs, both, both) == []
    assert rules.channels_for("deadline_missed", prefs, both, both) == ["email", "sms"]
    assert rules.channels_for("case_claimed", prefs, both, both) == ["email", "sms"]


def test_channels_need_a_contact_a_configured_channel_and_the_users_consent():
    prefs = rules.Preferences()  # email on, sms off by default
    assert rules.channels_for("case_claimed", prefs, {"email", "sms"}, {"email", "sms"}) == ["email"]
    assert rules.channels_for("case_claimed", prefs, {"sms"}, {"email", "sms"}) == []
    assert rules.channels_for("deadline_missed", prefs, {"email", "sms"}, {"email"}) == ["email"]
    assert rules.channels_for("deadline_missed", prefs, {"sms"}, {"email", "sms"}) == ["sms"]


SAMPLE = case(offered_to=["w"], claim_due=AT, handle_due=AT, report_in_due=AT, due=AT, by="x",
              from_level="grid", reason="claim_deadline", kind="photo", text=None, result="修好了",
              outcome="rated", rating=5, departments=["police"], step="handle", into_petition_id="abcd-1",
              whistle_id="w1", category="water_leak", to_handler="w", from_handler="v", catch_all=False,
              amount=10, balance=130, earned_before=AT, supermarket="村积分超市", pieces=2, expires_at=AT)


@pytest.mark.parametrize("kind", rules.KINDS)
@pytest.mark.parametrize("language", rules.LANGUAGES)
def test_every_kind_renders_in_both_languages(kind, language):
    title, body = templates.render(kind, language, SAMPLE)
    assert title and body and "{" not in title + body and "None" not in body


def test_times_are_shown_in_local_time_to_the_minute_and_labels_in_the_users_language():
    _, zh = templates.render("deadline_missed", "zh-CN", SAMPLE)
    _, en = templates.render("deadline_missed", "en", SAMPLE)
    assert "2025年3月1日 09:30" in zh and "办理" in zh
    assert "1 Mar 2025, 09:30" in en and "handling" in en
    _, urumqi = templates.render("deadline_missed", "en", SAMPLE, tz=ZoneInfo("Asia/Urumqi"))
    assert "1 Mar 2025, 07:30" in urumqi
    assert templates.reference(SAMPLE["case_id"]) in en


INTAKE_EVENTS = {"petition_rated": {"petition_id": "9a8b7c6d-1111", "reporter_id": "resident-1", "rating": 2,
                                    "at": AT},
                 "petition_merged": {"petition_id": "9a8b7c6d-1111", "into_petition_id": "abcd-1",
                                     "reporter_id": "resident-1", "by": "admin-1", "at": AT}}


# points' notices (earned, expired, redemptions) name no case
CASE_KINDS = [kind for kind in rules.KINDS if not kind.startswith(("points_", "redemption_"))]


@pytest.mark.parametrize("kind", CASE_KINDS)
def test_every_notice_about_a_case_names_it_the_same_way(kind):
    data = with_cases(INTAKE_EVENTS.get(kind, SAMPLE), Directory())  # intake's events name petitions only
    ref = templates.reference("5f0c1a2b-0000")
    for language, named in (("zh-CN", f"工单 {ref}"), ("en", f"case {ref}")):
        title, body = templates.render(kind, language, data)
        assert title.endswith(f" {ref}") and named in body.replace("Case", "case"), (title, body)


def test_contacts_are_masked_and_sealed_per_purpose():
    assert mask_email("zhang.wei@example.cn") == "z***@example.cn"
    assert mask_phone("13812345678") == "138****5678"
    sealer = DataKey(b"k" * 32, "notify")
    token = sealer.seal("13812345678", "contact.sms")
    assert sealer.open(token, "contact.sms") == "13812345678" and "138" not in token
    with pytest.raises(Unopenable):
        sealer.open(token, "contact.email")


def test_retries_back_off_exponentially_up_to_an_hour():
    config = NotifyConfig(retry_seconds=30)
    waits = [backoff(config, n) for n in (1, 2, 3, 20)]
    assert timedelta(seconds=27) <= waits[0] <= timedelta(seconds=33)
    assert timedelta(seconds=54) <= waits[1] <= timedelta(seconds=66)
    assert timedelta(seconds=108) <= waits[2] <= timedelta(seconds=132)
    assert waits[3] <= timedelta(seconds=3960)


def test_only_missed_deadlines_whistles_and_cases_nobody_can_take_are_critical():
    assert rules.CRITICAL_KINDS == {"deadline_missed", "case_whistled", "case_unattended"}


def test_a_case_handed_back_reaches_who_has_it_now_and_the_resident_only_when_it_was_held():
    held = rules.address(CASE_HANDED_BACK.type, case(handler="gone", reason="handler_left", offered_to=["head"],
                                                     claim_due=AT), Directory())
    assert {(a.recipient_id, a.kind) for a in held} == {("head", "case_handed_back"),
                                                        ("resident-1", "case_handler_changed")}
    offered = rules.address(CASE_HANDED_BACK.type, case(handler=None, reason="offers_withdrawn",
                                                        offered_to=["head"], claim_due=AT), Directory())
    assert [(a.recipient_id, a.kind) for a in offered] == [("head", "case_handed_back")]


def test_a_reassignment_reaches_the_new_and_the_old_handler_but_not_the_supervisor():
    addressed = rules.address(CASE_REASSIGNED.type, case(by="head", from_handler="a", to_handler="b",
                                                         reason="sick", handle_due=AT), Directory())
    assert [(a.recipient_id, a.kind) for a in addressed] == [("b", "case_reassigned"), ("a", "case_reassigned_away")]
    to_self = rules.address(CASE_REASSIGNED.type, case(by="head", from_handler=None, to_handler="head",
                                                       reason="mine", handle_due=AT), Directory())
    assert to_self == []


def test_supervision_reaches_those_named_and_a_deadline_escalation_does_not_make_it_supervision():
    manual = case(from_level="grid", level="community", reason="manual", offered_to=[], claim_due=AT, by="admin",
                  text="third complaint", due=AT, notify=["worker-1", "admin"], division_code=None)
    addressed = rules.address(CASE_ESCALATED.type, manual, Directory())
    assert [(a.recipient_id, a.kind) for a in addressed] == [("worker-1", "case_supervised")]
    _, body = templates.render("case_supervised", "zh-CN", manual)
    assert "社区" in body and "third complaint" in body and "2025年3月1日 09:30" in body
    late = manual | {"reason": "handle_deadline", "by": None, "notify": None}
    assert rules.address(CASE_ESCALATED.type, late, Directory()) == []


def test_a_case_nobody_can_take_alerts_those_named_in_plain_words():
    data = case(grid_id=None, level="county", reason="nobody_to_offer", catch_all=True, notify=["root"])
    [alert] = rules.address(CASE_UNATTENDED.type, data, Directory())
    assert (alert.recipient_id, alert.kind, alert.critical) == ("root", "case_unattended", True)
    title, body = templates.render("case_unattended", "en", data)
    assert "county catch-all queue" in body and "nobody to offer it to" in body
    assert "无人可派" in templates.render("case_unattended", "zh-CN", data)[1]


def test_two_cases_opened_in_the_same_minute_get_different_numbers():
    from notify.templates import reference

    first, second = "019a2b3c-4d5e-7f00-8a1b-2c3d4e5f6a7b", "019a2b3c-4d5e-7f00-9c8d-7e6f5a4b3c2d"
    assert reference(first) != reference(second)
    assert reference(first) == "4E5F6A7B"


def test_residents_hear_when_they_earn_points_and_when_points_expire():
    from contracts.points import ACCOUNT_EXPIRED, AWARD_GRANTED

    earned = {"community": "DL-01-01", "account_id": 4, "kind": "household", "holder": "31", "amount": 10,
              "balance": 130, "notify": ["mother", "son"], "at": AT, "transfer_id": "t-1", "reason": "hygiene",
              "rule_id": "r-1"}
    assert [(a.recipient_id, a.kind) for a in rules.address(AWARD_GRANTED.type, earned, Directory())] == [
        ("mother", "points_earned"), ("son", "points_earned")]
    assert templates.render("points_earned", "zh-CN", earned) == (
        "获得积分 +10", "因评为清洁户获得 10 积分，账户余额 130 积分。")
    assert templates.render("points_earned", "en", earned)[1] == \
        "You earned 10 points for a clean household; the balance is 130."

    expired = {"community": "DL-01-01", "account_id": 5, "kind": "person", "holder": "ann", "amount": 20,
               "balance": 0, "notify": ["ann"], "at": AT, "transfer_id": "t-2", "earned_before": AT}
    assert [(a.recipient_id, a.kind) for a in rules.address(ACCOUNT_EXPIRED.type, expired, Directory())] == [
        ("ann", "points_expired")]
    assert templates.render("points_expired", "zh-CN", expired)[1] == \
        "2025年3月1日 09:30 前获得且未使用的 20 积分已到期，账户余额 0 积分。"


def test_the_resident_hears_when_her_redemption_is_held_handed_over_or_expired_not_when_she_cancels():
    redemption = {"redemption_id": "0193aaaa-bbbb-7ccc-8ddd-eeeeffff0001", "supermarket_id": 3,
                  "supermarket": "村积分超市", "community": "DL-01-01", "resident": "resident-1", "amount": 30,
                  "pieces": 2, "expires_at": AT, "at": AT}
    for event, kind, by in ((REDEMPTION_HELD, "redemption_held", None),
                            (REDEMPTION_HANDED_OVER, "redemption_handed_over", "keeper-1"),
                            (REDEMPTION_EXPIRED, "redemption_expired", None)):
        assert rules.address(event.type, redemption | {"by": by}, Directory()) == [
            rules.Addressed("resident-1", kind, False)]
    assert rules.address(REDEMPTION_CANCELLED.type, redemption | {"by": "resident-1"}, Directory()) == []
    _, body = templates.render("redemption_held", "zh-CN", redemption)
    assert "村积分超市" in body and "30 积分" in body and "2025年3月1日 09:30" in body
