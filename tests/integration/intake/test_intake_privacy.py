"""Who sees the reporter's name and phone: the masking matrix."""

from __future__ import annotations

import json

import pytest

from intake.testing import CASE_EVENTS, case_data, feed, feed_case

from .conftest import submit, upload

FULL = {"name": "王小明", "phone": "13812345678", "masked": False}
MASKED = {"id": None, "name": "王**", "phone": "138****5678", "masked": True}


@pytest.fixture
def case(intake, client, people):
    """A petition offered to one worker and claimed by another; ids and headers of everyone."""
    reporter, reporter_h = people.resident(name="王小明")
    offered, offered_h = people.worker()
    claimer, claimer_h = people.worker()
    _, other_h = people.worker()
    _, county_h = people.county_admin()
    _, community_h = people.person(("community_admin", "division:DL-01-01"))
    _, neighbour_h = people.resident(name="李四")

    def make(anonymous: bool) -> dict:
        petition = submit(client, reporter_h, anonymous=anonymous, separate=True,
                          contact={"phone": "13812345678"})
        feed_case(intake, "assigned", petition, offered_to=[offered])
        feed_case(intake, "claimed", petition, by=claimer)
        return petition

    return make, reporter, {"reporter": reporter_h, "offered worker": offered_h, "claiming worker": claimer_h,
                            "other worker": other_h, "county admin": county_h,
                            "community admin": community_h, "neighbour": neighbour_h}


EXPECTED = {
    # viewer: (named petition, anonymous petition); "full" carries the reporter's id.
    "reporter": ("full", "full"),
    "offered worker": ("full", None),
    "claiming worker": ("full", None),
    "county admin": ("full", None),
    "other worker": ("masked", None),
    "community admin": ("masked", None),
    "neighbour": (403, 403),
}


@pytest.mark.parametrize("viewer", EXPECTED)
def test_the_reporter_is_shown_in_full_masked_or_not_at_all(client, case, viewer):
    make, reporter, headers = case
    for anonymous, expected in zip((False, True), EXPECTED[viewer], strict=True):
        petition = make(anonymous)
        answer = client.get(f"/petitions/{petition['id']}", headers=headers[viewer])
        if expected == 403:
            assert answer.status_code == 403
            continue
        assert answer.status_code == 200
        shown = answer.json["reporter"]
        if expected == "full":
            assert shown == FULL | {"id": reporter}
        elif expected == "masked":
            assert shown == MASKED
        else:
            assert shown is None
        listed = client.get("/petitions", headers=headers[viewer])
        if listed.status_code == 200:
            [row] = [p for p in listed.json["items"] if p["id"] == petition["id"]]
            assert row["reporter"] == shown


def test_the_timeline_never_shows_phone_numbers_or_staff_ids(intake, client, people):
    _, headers = people.resident()
    petition = submit(client, headers, contact={"phone": "13812345678"})
    feed_case(intake, "assigned", petition, offered_to=["worker-secret-id"])
    feed_case(intake, "claimed", petition, by="worker-secret-id")
    text = client.get(f"/petitions/{petition['id']}/timeline", headers=headers).get_data(as_text=True)
    assert "13812345678" not in text and "worker-secret-id" not in text


# --------------------------------------------------------------------------
# followers ("me too", or merged in): progress, not content, unless the report is public
# --------------------------------------------------------------------------

SECRET = "我家302室门口水管爆裂"
NOTE = "已电话联系王先生13900001111，约302室上门"
RESULT = "已为302室更换水管"


def said(response) -> str:
    """The answer as a reader sees it (unicode unescaped)."""
    return json.dumps(response.json, ensure_ascii=False)


def reported(client, people, **overrides):
    """A resident's report with a photo and a phone, and a neighbour who said "me too"."""
    reporter_id, reporter = people.resident(name="王小明")
    photo = upload(client, reporter).json["id"]
    petition = submit(client, reporter, description=SECRET, photos=[photo], contact={"phone": "13812345678"},
                      **overrides)
    _, neighbour = people.resident(name="李四")
    followed = client.post(f"/petitions/{petition['id']}/followers", headers=neighbour)
    assert followed.status_code == 201, followed.json
    return petition, photo, reporter, neighbour, followed.json


def assert_no_content(view: dict) -> None:
    assert view["relation"] == "follower"
    assert (view["description"], view["photos"], view["reporter"], view["place"]) == (None, [], None, None)
    assert (view["result"], view["rating_comment"]) == (None, None)


def test_the_public_choice_is_false_unless_the_reporter_makes_it_and_the_reporter_sees_it(client, people):
    _, reporter = people.resident()
    private = submit(client, reporter, separate=True)
    public = submit(client, reporter, separate=True, public=True)
    assert (private["public"], public["public"]) == (False, True)
    assert client.get(f"/petitions/{public['id']}", headers=reporter).json["public"] is True
    mine = {p["id"]: p["public"] for p in client.get("/me/petitions", headers=reporter).json["items"]}
    assert mine == {private["id"]: False, public["id"]: True}
    assert submit(client, reporter, expect=422, separate=True, public="maybe")["errors"]["public"]


def test_a_follower_never_sees_the_description_photos_place_or_contact(intake, client, people):
    petition, photo, reporter, neighbour, followed = reported(client, people)
    assert_no_content(followed)
    feed_case(intake, "resolved", petition)
    client.post(f"/petitions/{petition['id']}/rating", json={"rating": 2, "comment": "302室还在漏"},
                headers=reporter)
    view = client.get(f"/petitions/{petition['id']}", headers=neighbour).json
    assert_no_content(view)
    assert (view["category"], view["status"], view["grid_id"], view["rating"]) == ("water_leak", "resolved", 11, 2)
    [listed] = client.get("/me/petitions", headers=neighbour).json["items"]
    assert_no_content(listed)
    assert client.get(f"/photos/{photo}", headers=neighbour).status_code == 403
    for text in (said(client.get(f"/petitions/{petition['id']}", headers=neighbour)),
                 said(client.get("/me/petitions", headers=neighbour))):
        assert "302室" not in text and "13812345678" not in text and photo not in text
    # the reporter and staff see what they saw before
    _, worker = people.worker()
    for headers in (reporter, worker):
        seen = client.get(f"/petitions/{petition['id']}", headers=headers).json
        assert seen["description"] == SECRET and seen["photos"] == [photo] and seen["result"] == RESULT_FED
        assert seen["place"]["lon"] == petition["place"]["lon"]
        assert client.get(f"/photos/{photo}", headers=headers).status_code == 200


RESULT_FED = "已修复漏水管道"  # intake.testing's default resolution


def test_a_follower_reads_progress_lines_without_anyones_own_words(intake, client, people):
    petition, _, reporter, neighbour, _ = reported(client, people)
    feed_case(intake, "assigned", petition)
    feed_case(intake, "claimed", petition)
    feed_case(intake, "progressed", petition, text=NOTE)
    feed(intake, CASE_EVENTS["progressed"], case_data("progressed", petition, text=NOTE) | {"kind": "returned"})
    feed_case(intake, "resolved", petition, result=RESULT)
    client.post(f"/petitions/{petition['id']}/rating", json={"rating": 1, "comment": "302室还在漏"},
                headers=reporter)
    client.post(f"/petitions/{petition['id']}/rework", json={"reason": "302室还在漏水"}, headers=reporter)
    feed_case(intake, "reopened", petition, reason="302室还在漏水")
    for lang in ("zh-CN", "en"):
        answer = client.get(f"/petitions/{petition['id']}/timeline",
                            headers=neighbour | {"Accept-Language": lang})
        assert answer.status_code == 200
        text = said(answer)
        assert "302室" not in text and "13900001111" not in text
        kinds = [s["kind"] for s in answer.json["steps"]]
        assert {"assigned", "claimed", "progressed", "resolved", "rated", "rework_requested", "reopened"} <= set(kinds)
        assert all(s["text"] and not s["text"].endswith(("：", ": ")) for s in answer.json["steps"])
    en = client.get(f"/petitions/{petition['id']}/timeline", headers=neighbour | {"Accept-Language": "en"}).json
    assert [s["text"] for s in en["steps"] if s["kind"] == "resolved"] == ["Resolved"]
    # the reporter and staff still read every word
    _, worker = people.worker()
    for headers in (reporter, worker):
        text = said(client.get(f"/petitions/{petition['id']}/timeline", headers=headers))
        assert NOTE in text and RESULT in text and "302室还在漏水" in text


def test_a_public_report_shows_its_description_photos_and_place_to_followers_but_never_the_contact(
        intake, client, people):
    petition, photo, _, neighbour, followed = reported(client, people, public=True)
    feed_case(intake, "progressed", petition, text=NOTE)
    view = client.get(f"/petitions/{petition['id']}", headers=neighbour).json
    for seen in (followed, view):
        assert (seen["relation"], seen["public"], seen["description"], seen["photos"]) == (
            "follower", True, SECRET, [photo])
        assert seen["reporter"] is None and seen["place"]["lat"] == petition["place"]["lat"]
    assert client.get(f"/photos/{photo}", headers=neighbour).status_code == 200
    text = said(client.get(f"/petitions/{petition['id']}/timeline", headers=neighbour))
    assert "13900001111" not in text and "13812345678" not in text


def test_a_merged_duplicates_reporter_follows_the_kept_petition_without_its_content(intake, client, people):
    kept, photo, _, _, _ = reported(client, people)
    duplicate_reporter, duplicate_h = people.resident(name="赵六")
    duplicate = submit(client, duplicate_h, separate=True, description="楼道漏水")
    _, admin = people.person(("community_admin", "division:DL-01-01"))
    assert client.post(f"/petitions/{duplicate['id']}/merge", json={"into": kept["id"]},
                       headers=admin).status_code == 200
    feed_case(intake, "progressed", kept, text=NOTE)
    assert_no_content(client.get(f"/petitions/{kept['id']}", headers=duplicate_h).json)
    assert client.get(f"/photos/{photo}", headers=duplicate_h).status_code == 403
    # on their own petition they read their own words, and the kept one's steps as progress lines
    own = client.get(f"/petitions/{duplicate['id']}", headers=duplicate_h).json
    assert own["description"] == "楼道漏水" and own["relation"] == "reporter"
    text = said(client.get(f"/petitions/{duplicate['id']}/timeline", headers=duplicate_h))
    assert "progressed" in text and NOTE not in text and "302室" not in text
