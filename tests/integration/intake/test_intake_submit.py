"""Submitting a petition: every channel, the checks on category and place, the event it publishes."""

from __future__ import annotations

from intake.tables import Petition
from intake.testing import BUILDING_ID, OUTSIDE

from .conftest import count, outbox_events, petition_body, submit


def test_a_resident_submits_on_the_app_and_the_event_carries_ids_but_no_personal_data(intake, client, people):
    resident, headers = people.resident(name="王小明")
    body = submit(client, headers, contact={"phone": "13812345678"},
                  description="我家楼上漏水，电话13812345678")
    assert body["status"] == "submitted" and body["channel"] == "app"
    assert body["reporter"] == {"id": resident, "name": "王小明", "phone": "13812345678", "masked": False}
    [event] = outbox_events(intake, "intake.petition.submitted.v1")
    assert event["subject"] == body["id"]
    data = event["data"]
    assert data["petition_id"] == body["id"] and data["reporter_id"] == resident
    assert data["network"] == "urban" and data["claim_minutes"] == 30 and data["place"]["lon"] == 100.05
    text = str(event)
    for secret in ("王小明", "13812345678", "漏水"):
        assert secret not in text


def test_personal_data_is_sealed_in_the_database(intake, client, people):
    _, headers = people.resident(name="李四")
    body = submit(client, headers, contact={"phone": "13900001111"})
    with intake.db.sessions() as session:
        row = session.get(Petition, body["id"])
    assert "13900001111" not in row.contact_phone and "李四" not in row.contact_name


def test_an_unknown_category_is_refused_with_422(client, people):
    _, headers = people.resident()
    body = submit(client, headers, expect=422, category="alien_invasion")
    assert "category" in body["errors"]


def test_a_point_outside_every_county_is_refused_with_422_naming_place(intake, client, people):
    _, headers = people.resident()
    body = submit(client, headers, expect=422, place=OUTSIDE)
    assert "place" in body["errors"]
    assert count(intake, Petition) == 0 and outbox_events(intake) == []


def test_a_building_stands_for_its_location_and_an_unknown_one_is_refused(client, people):
    _, headers = people.resident()
    body = submit(client, headers, place={"building_id": BUILDING_ID})
    assert body["place"] == {"lon": 100.06, "lat": 25.06, "building_id": BUILDING_ID}
    assert "place" in submit(client, headers, expect=422, place={"building_id": 999})["errors"]


def test_place_must_be_a_point_or_a_building_not_both(client, people):
    _, headers = people.resident()
    submit(client, headers, expect=422, place={"lon": 100.05, "lat": 25.05, "building_id": BUILDING_ID})
    submit(client, headers, expect=422, place={"lon": 100.05})


def test_bad_input_gets_422_problems_never_500(client, people):
    _, headers = people.resident()
    for bad in ({"description": "x" * 2001}, {"description": ""}, {"unexpected": 1},
                {"channel": "pigeon"}, {"photos": "abc"}, {"place": "here"}, {"anonymous": "maybe"}):
        response = client.post("/petitions", json=petition_body(**bad), headers=headers)
        assert response.status_code == 422, (bad, response.json)
        assert response.content_type == "application/problem+json"
    assert client.post("/petitions", data="not json", headers=headers | {
        "Content-Type": "application/json"}).status_code in (400, 422)


def test_a_hotline_operator_submits_for_a_resident_with_their_contact(intake, client, people):
    resident, _ = people.resident()
    operator, headers = people.person(("community_admin", "division:DL-01-01"))
    body = submit(client, headers, channel="hotline", reporter_id=resident,
                  contact={"name": "张三", "phone": "13712345678"})
    assert body["reporter"]["id"] == resident and body["reporter"]["phone"] == "13712345678"
    [event] = outbox_events(intake, "intake.petition.submitted.v1")
    assert event["data"]["submitted_by"] == operator and event["data"]["reporter_id"] == resident


def test_operator_channels_require_the_resident_and_their_contact(client, people):
    _, headers = people.worker()
    body = submit(client, headers, expect=422, channel="window")
    assert {"reporter_id", "contact"} <= set(body["errors"])


def test_each_channel_is_open_only_to_its_roles(client, people):
    _, resident = people.resident()
    _, volunteer = people.person(("volunteer", "county"))
    submit(client, resident, expect=403, channel="hotline", reporter_id="r1",
           contact={"name": "张三", "phone": "13712345678"})
    submit(client, resident, expect=403, channel="patrol")
    submit(client, volunteer, expect=403)


def test_a_patrol_note_may_be_closed_on_the_spot_with_its_result(intake, client, people):
    worker, headers = people.worker()
    body = submit(client, headers, channel="patrol", closed_on_spot=True, result="已清理堵塞井盖",
                  category="drainage")
    assert body["status"] == "resolved" and body["result"] == "已清理堵塞井盖"
    [event] = outbox_events(intake, "intake.petition.submitted.v1")
    assert event["data"]["closed_on_spot"] is True and event["data"]["reporter_id"] == worker
    assert "result" in submit(client, headers, expect=422, channel="patrol", closed_on_spot=True)["errors"]
    _, resident = people.resident()
    submit(client, resident, expect=422, closed_on_spot=True, result="done")


def test_categories_are_seeded_with_names_networks_and_deadlines(client, people):
    _, headers = people.resident()
    categories = {c["code"]: c for c in client.get("/categories", headers=headers).json}
    assert len(categories) == 13
    assert categories["illegal_parking"]["network"] == "urban"
    assert categories["neighbour_dispute"]["network"] == "security"
    assert categories["elderly_care"]["network"] == "party" and categories["elderly_care"]["name_zh"] == "养老服务"
    assert all(c["name_en"] and c["claim_minutes"] > 0 and c["handle_hours"] > 0 for c in categories.values())


def test_a_county_admin_adds_and_changes_categories_and_an_inactive_one_takes_no_petitions(client, people):
    _, admin = people.county_admin()
    new = {"code": "stray_animals", "name_zh": "流浪动物", "name_en": "Stray animals", "network": "urban",
           "claim_minutes": 60, "handle_hours": 48}
    created = client.post("/categories", json=new, headers=admin)
    assert created.status_code == 201 and created.json["working_hours"] is False
    assert client.post("/categories", json=new, headers=admin).status_code == 409
    changed = client.patch("/categories/stray_animals", json={"handle_hours": 24, "active": False}, headers=admin)
    assert changed.status_code == 200 and changed.json["handle_hours"] == 24
    assert client.patch("/categories/nope", json={"active": False}, headers=admin).status_code == 404
    assert client.patch("/categories/stray_animals", json={"code": "x"}, headers=admin).status_code == 422
    _, resident = people.resident()
    submit(client, resident, expect=422, category="stray_animals")


def test_my_petitions_are_paginated_newest_first(client, people):
    _, headers = people.resident()
    ids = [submit(client, headers, separate=True)["id"] for _ in range(5)]
    seen, cursor = [], None
    while True:
        page = client.get("/me/petitions", query_string={"limit": 2} | ({"cursor": cursor} if cursor else {}),
                          headers=headers).json
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids[::-1]
    assert client.get("/me/petitions", query_string={"cursor": "garbage!"}, headers=headers).status_code == 422
    _, other = people.resident()
    assert client.get("/me/petitions", headers=other).json["items"] == []


def test_staff_list_petitions_by_status_and_category_within_their_scope(client, people):
    _, resident = people.resident()
    submit(client, resident, separate=True)
    submit(client, resident, separate=True, category="noise")
    submit(client, resident, separate=True, place={"lon": 100.15, "lat": 25.05})  # east community
    _, county = people.county_admin()
    assert len(client.get("/petitions", headers=county).json["items"]) == 3
    assert len(client.get("/petitions", query_string={"category": "noise"}, headers=county).json["items"]) == 1
    assert client.get("/petitions", query_string={"status": "claimed"}, headers=county).json["items"] == []
    _, west = people.person(("community_admin", "division:DL-01-01"))
    assert len(client.get("/petitions", headers=west).json["items"]) == 2
    _, by_grid = people.person(("community_admin", "grid:11"))
    assert len(client.get("/petitions", headers=by_grid).json["items"]) == 2
    _, street = people.person(("street_admin", "division:DL-01"))
    assert len(client.get("/petitions", headers=street).json["items"]) == 3
    assert client.get("/petitions", query_string={"status": "lost"}, headers=county).status_code == 422
