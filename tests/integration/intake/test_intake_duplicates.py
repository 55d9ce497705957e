"""Duplicates: "me too" instead of a second petition, and staff merging the ones that slip through."""

from __future__ import annotations

import json

from intake.testing import feed_case

from .conftest import outbox_events, petition_body, submit

NEAR = {"lon": 100.0505, "lat": 25.0503}  # ~60 m from INSIDE
FAR = {"lon": 100.06, "lat": 25.06}  # ~1.5 km away


def test_a_similar_open_petition_nearby_is_a_409_listing_it_until_the_resident_says_separate(client, people):
    _, first = people.resident()
    kept = submit(client, first)
    _, second = people.resident()
    conflict = submit(client, second, expect=409, place=NEAR)
    assert conflict["type"].endswith("/duplicate")
    [similar] = conflict["similar"]
    assert similar["id"] == kept["id"] and similar["status"] == "submitted" and 40 < similar["distance_m"] < 100
    assert submit(client, second, place=NEAR, separate=True)["id"] != kept["id"]


def test_the_similar_list_says_what_a_resident_needs_to_decide_and_nothing_of_the_report(client, people):
    _, first = people.resident(name="王小明")
    kept = submit(client, first, description="我家302室门口漏水", contact={"phone": "13812345678"})
    _, second = people.resident()
    conflict = client.post("/petitions", json=petition_body(place=NEAR), headers=second)
    assert conflict.status_code == 409
    [similar] = conflict.json["similar"]
    assert set(similar) == {"id", "category", "distance_m", "status", "submitted_at"}
    assert (similar["id"], similar["category"], similar["status"]) == (kept["id"], "water_leak", "submitted")
    assert similar["submitted_at"] == kept["submitted_at"]
    text = json.dumps(conflict.json, ensure_ascii=False)
    assert "302" not in text and "13812345678" not in text and "王" not in text


def test_far_away_another_category_or_a_closed_one_is_not_a_duplicate(intake, client, people):
    _, a = people.resident()
    kept = submit(client, a)
    _, b = people.resident()
    submit(client, b, place=FAR)
    submit(client, b, place=NEAR, category="noise")
    feed_case(intake, "resolved", kept)
    submit(client, b, place=NEAR)


def test_me_too_makes_the_resident_a_follower_who_sees_the_progress_and_timeline(intake, client, people):
    _, reporter = people.resident()
    kept = submit(client, reporter)
    neighbour_id, neighbour = people.resident()
    assert client.get(f"/petitions/{kept['id']}", headers=neighbour).status_code == 403
    followed = client.post(f"/petitions/{kept['id']}/followers", headers=neighbour)
    assert followed.status_code == 201 and followed.json["relation"] == "follower"
    assert followed.json["reporter"] is None and followed.json["description"] is None
    assert client.post(f"/petitions/{kept['id']}/followers", headers=neighbour).status_code == 200
    [event] = outbox_events(intake, "intake.petition.followed.v1")
    assert event["data"] == event["data"] | {"petition_id": kept["id"], "follower_id": neighbour_id}
    feed_case(intake, "claimed", kept)
    steps = client.get(f"/petitions/{kept['id']}/timeline", headers=neighbour).json["steps"]
    assert [s["kind"] for s in steps][-1] == "claimed"
    mine = client.get("/me/petitions", headers=neighbour).json["items"]
    assert [p["id"] for p in mine] == [kept["id"]]
    assert client.post(f"/petitions/{kept['id']}/followers", headers=reporter).status_code == 409


def test_staff_merge_a_duplicate_and_its_reporter_follows_the_kept_case(intake, client, people):
    _, a = people.resident()
    kept = submit(client, a)
    b_id, b = people.resident()
    duplicate = submit(client, b, place=NEAR, separate=True)
    _, admin = people.person(("community_admin", "division:DL-01-01"))
    merged = client.post(f"/petitions/{duplicate['id']}/merge", json={"into": kept["id"]}, headers=admin)
    assert merged.status_code == 200 and merged.json["status"] == "merged"
    assert merged.json["merged_into"] == kept["id"]
    [event] = outbox_events(intake, "intake.petition.merged.v1")
    assert event["data"]["into_petition_id"] == kept["id"] and event["data"]["reporter_id"] == b_id
    feed_case(intake, "assigned", kept)
    # The duplicate's reporter sees the kept case's steps, on their own petition and on the kept one.
    own = client.get(f"/petitions/{duplicate['id']}/timeline", headers=b).json["steps"]
    assert {"merged", "assigned"} <= {s["kind"] for s in own}
    assert client.get(f"/petitions/{kept['id']}/timeline", headers=b).status_code == 200
    # Merging again, into itself, or by a resident is refused.
    assert client.post(f"/petitions/{duplicate['id']}/merge", json={"into": kept["id"]},
                       headers=admin).status_code == 409
    assert client.post(f"/petitions/{kept['id']}/merge", json={"into": kept["id"]},
                       headers=admin).status_code == 409
    assert client.post(f"/petitions/{kept['id']}/merge", json={"into": duplicate["id"]},
                       headers=a).status_code == 403
    assert client.post(f"/petitions/{kept['id']}/merge", json={"into": "nope"},
                       headers=admin).status_code == 404
