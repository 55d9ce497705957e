"""intake's rules, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gridkit.auth import Grant, Principal
from intake import domain
from intake.photos import FilesystemPhotoStore
from intake.testing import JPEG, PNG, WEBP

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


def person(*roles: str, sub: str = "me") -> Principal:
    return Principal(sub, "user", tuple(Grant(r) for r in roles))


def test_status_moves_forward_only_unless_rework_sends_it_back():
    assert domain.next_status("submitted", "claimed") == "claimed"
    assert domain.next_status("claimed", "assigned") == "claimed"
    assert domain.next_status("resolved", "claimed", backwards=True) == "claimed"
    assert domain.next_status("withdrawn", "closed") == "withdrawn"
    assert domain.next_status("merged", "claimed", backwards=True) == "merged"


def test_withdraw_is_allowed_until_someone_claims_it():
    domain.check_withdraw("submitted")
    domain.check_withdraw("assigned")
    for status in ("claimed", "resolved", "closed", "withdrawn", "merged"):
        with pytest.raises(domain.RuleBroken):
            domain.check_withdraw(status)


def test_rating_needs_a_resolution_and_happens_once():
    domain.check_rating("resolved", False)
    with pytest.raises(domain.RuleBroken, match="already"):
        domain.check_rating("resolved", True)
    with pytest.raises(domain.RuleBroken, match="resolved"):
        domain.check_rating("claimed", False)


@pytest.mark.parametrize("rating,days,ok", [(1, 1, True), (2, 6.9, True), (3, 1, False), (1, 7.1, False),
                                            (None, 1, False)])
def test_rework_follows_a_low_rating_within_seven_days(rating, days, ok):
    resolved = NOW - timedelta(days=days)
    if ok:
        domain.check_rework("closed", rating, resolved, NOW)
    else:
        with pytest.raises(domain.RuleBroken):
            domain.check_rework("resolved", rating, resolved, NOW)


def test_channels_belong_to_their_roles():
    assert domain.may_submit(person("resident"), "app")
    assert not domain.may_submit(person("resident"), "hotline")
    assert domain.may_submit(person("community_admin"), "window")
    assert domain.may_submit(person("grid_head"), "patrol")
    assert not domain.may_submit(person("volunteer"), "app")


def test_operator_channels_need_the_resident_and_patrol_notes_need_a_result():
    errors = domain.submission_errors({"channel": "hotline"}, person("grid_worker"))
    assert set(errors) == {"reporter_id", "contact"}
    errors = domain.submission_errors({"channel": "app", "closed_on_spot": True}, person("resident"))
    assert set(errors) == {"closed_on_spot", "result"}
    assert domain.submission_errors({"channel": "patrol", "closed_on_spot": True, "result": "ok"},
                                    person("grid_worker")) == {}


def test_who_sees_the_reporter():
    view = lambda p, anonymous=False: domain.contact_view(  # noqa: E731
        p, reporter_id="r", anonymous=anonymous, handlers={"h"}, submitted_by="op")
    assert view(person("resident", sub="r")) == "full"
    assert view(person("resident", sub="r"), anonymous=True) == "full"
    assert view(person("grid_worker", sub="h")) == "full"
    assert view(person("grid_worker", sub="op")) == "full"
    assert view(person("county_admin", sub="c")) == "full"
    assert view(person("county_admin", sub="c"), anonymous=True) == "hidden"
    assert view(person("grid_worker", sub="x")) == "masked"
    assert domain.shown_contact("masked", "王小明", "13812345678") == {
        "name": "王**", "phone": "138****5678", "masked": True}


def test_a_follower_sees_progress_not_content_unless_the_report_is_public():
    def seen(p, public=False):
        return domain.sight(p, reporter_id="r", followers={"f"}, public=public, anonymous=False, handlers={"h"})

    assert seen(person("resident", sub="r")) == domain.Sight("reporter", "full", True, True, True)
    assert seen(person("grid_worker", sub="x")) == domain.Sight("staff", "masked", True, True, True)
    assert seen(person("grid_worker", sub="h")).contact == "full"
    assert seen(person("resident", sub="f")) == domain.Sight("follower", "hidden", False, False, False)
    assert seen(person("resident", sub="f"), public=True) == domain.Sight("follower", "hidden", True, True, False)
    assert seen(person("resident", sub="x"), public=True) is None
    assert not domain.may_see_photo(person("resident", sub="f"), "r", seen(person("resident", sub="f")))
    assert domain.may_see_photo(person("resident", sub="f"), "r", seen(person("resident", sub="f"), public=True))
    assert domain.may_see_photo(person("resident", sub="r"), "r", None)


def test_a_follower_reads_standard_progress_lines_without_anyones_own_words():
    follower = domain.Sight("follower", "hidden", content=True, place=True, words=False)
    staff = domain.Sight("staff", "masked", content=True, place=True, words=True)
    line = domain.step_text
    assert line("progressed", {"step": "note", "text": "王先生 302"}, "en", follower) == "There is progress"
    assert line("progressed", {"step": "returned", "text": "302"}, "zh-CN", follower) == "已退回重新分派"
    assert line("progressed", {"step": "unheard-of", "text": "302"}, "en", follower) == "There is progress"
    assert line("progressed", {"step": "extension_refused"}, "en", follower) == "The request for more time was refused"
    assert line("resolved", {"result": "302"}, "en", follower) == "Resolved"
    assert line("rework_requested", {"reason": "302"}, "zh-CN", follower) == "居民申请不满意重办"
    assert line("rated", {"rating": 2}, "en", follower) == "The resident rated it 2 stars"
    assert line("resolved", {"result": "302"}, "en", staff) == "Resolved: 302"


def test_duplicates_are_open_same_category_within_100_metres_and_48_hours():
    near = domain.Nearby("a", "assigned", 100.0005, 25.0, NOW - timedelta(hours=1), "drainage")
    far = domain.Nearby("b", "submitted", 100.002, 25.0, NOW, "drainage")
    old = domain.Nearby("c", "submitted", 100.0, 25.0, NOW - timedelta(hours=49), "drainage")
    closed = domain.Nearby("d", "resolved", 100.0, 25.0, NOW, "drainage")
    found = domain.similar(100.0, 25.0, NOW, [near, far, old, closed])
    assert [f["id"] for f in found] == ["a"] and 45 < found[0]["distance_m"] < 55
    x0, y0, x1, y1 = domain.box_around(100.0, 25.0, 100)
    assert x0 < 100.0005 < x1 and not x0 < 100.002 < x1


def test_images_are_known_by_their_magic_bytes():
    assert domain.sniff_image(JPEG) == "image/jpeg"
    assert domain.sniff_image(PNG) == "image/png"
    assert domain.sniff_image(WEBP) == "image/webp"
    assert domain.sniff_image(b"GIF89a....") is None
    assert domain.sniff_image(b"") is None


def test_timeline_steps_read_in_chinese_or_english_and_tolerate_missing_details():
    assert domain.describe("assigned", {"grid": "龙溪社区1号网格"}, "zh-CN") == "已分派至 龙溪社区1号网格"
    assert domain.describe("assigned", {"grid": "龙溪社区1号网格"}, "en") == "Assigned to grid 龙溪社区1号网格"
    assert domain.describe("escalated", {"level": "street"}, "zh-CN") == "已上报至街道处理"
    assert domain.describe("progressed", {"step": "returned"}, "en") == "Returned for re-assignment: "
    assert domain.describe("rated", {"rating": 2}, "zh-CN", own=False) == "居民评价：2 星"


def test_a_new_due_time_reads_in_local_time_to_the_minute_as_each_language_writes_it():
    due = "2026-12-08 13:03:00.698590+00:00"  # as the step's params keep it
    assert domain.describe("progressed", {"step": "extension_approved", "due": due}, "zh-CN") \
        == "延期已批准，新的办理期限 2026年12月8日 21:03"
    assert domain.describe("progressed", {"step": "extension_approved", "due": due}, "en") \
        == "More time approved; now due 8 Dec 2026, 21:03"
    assert domain.describe("progressed", {"step": "extension_approved", "due": due}, "en",
                           tz=ZoneInfo("Europe/London")) == "More time approved; now due 8 Dec 2026, 13:03"


def test_the_photo_store_is_content_addressed_and_atomic(tmp_path):
    store = FilesystemPhotoStore(tmp_path)
    address = store.put(JPEG)
    assert store.put(JPEG) == address and store.get(address) == JPEG
    assert sum(p.is_file() for p in tmp_path.rglob("*")) == 1
    with pytest.raises(FileNotFoundError):
        store.get("../../etc/passwd")
