"""Who sees the reporter's name and phone: the masking matrix."""

from __future__ import annotations

import pytest

from intake.testing import feed_case

from .conftest import submit

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
