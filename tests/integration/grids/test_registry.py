"""Grids over HTTP on PostgreSQL: versions, validation, staffing, housing, events."""

import json
import uuid

import pytest
from sqlalchemy import select

from grids.tables import Grid, GridVersion, StaffAssignment, outbox
from grids.testing import grid_body, rect

from .conftest import count, make_grid

WEST = (100.0, 25.0, 100.05, 25.1)
EAST = (100.05, 25.0, 100.1, 25.1)


def events(runtime, routing_key=None):
    with runtime.db.sessions() as session:
        rows = session.execute(select(outbox.table.c.routing_key, outbox.table.c.body)
                               .order_by(outbox.table.c.id)).all()
    return [json.loads(body) for key, body in rows if routing_key is None or key == routing_key]


def test_three_networks_are_seeded_and_admins_add_more(client, admin, tokens, registry):
    assert [n["code"] for n in client.get("/networks", headers=admin).json] == ["party", "security", "urban"]
    response = client.post("/networks", json={"code": "hrss", "name": "人社网格"}, headers=admin)
    assert response.status_code == 201
    assert client.post("/networks", json={"code": "hrss", "name": "again"}, headers=admin).status_code == 409
    assert events(registry, "grids.network.created.v1")[0]["data"]["code"] == "hrss"


def test_a_redraw_keeps_the_grid_id_and_locate_answers_for_any_date(client, admin, community, registry):
    grid = make_grid(client, admin, "S-1", WEST, division_id=community, valid_from="2024-01-01")
    redrawn = client.put(f"/grids/{grid['id']}/boundary", headers=admin,
                         json={"boundary": rect(100.0, 25.0, 100.07, 25.1), "valid_from": "2025-06-01"})
    assert redrawn.status_code == 200, redrawn.json
    assert (redrawn.json["id"], redrawn.json["version"]) == (grid["id"], 2)
    point = "lon=100.06&lat=25.05"
    def codes(query):
        return [g["code"] for g in client.get(f"/locate?{point}{query}", headers=admin).json["grids"]]
    assert codes("&at=2025-01-01") == []          # the first boundary stopped at 100.05
    assert codes("&at=2025-06-01") == ["S-1"]
    assert codes("") == ["S-1"]
    assert codes("&at=2023-12-31") == []          # before the grid existed
    retired = client.post(f"/grids/{grid['id']}/retire", json={"valid_to": "2025-09-01"}, headers=admin)
    assert retired.status_code == 200 and retired.json["valid_to"].startswith("2025-09-01")
    assert codes("") == [] and codes("&at=2025-08-31") == ["S-1"]
    history = client.get(f"/grids/{grid['id']}/history", headers=admin).json["versions"]
    assert [(v["version"], v["valid_from"][:10], (v["valid_to"] or "")[:10]) for v in history] == [
        (1, "2024-01-01", "2025-06-01"), (2, "2025-06-01", "2025-09-01")]
    assert [e["type"] for e in events(registry)] == [
        "grids.grid.created.v1", "grids.grid.redrawn.v1", "grids.grid.retired.v1"]
    created = events(registry)[0]["data"]
    assert created["boundary"]["type"] == "Polygon" and created["division"]["code"] == "DL-01-01"
    assert client.get("/grids?network=security", headers=admin).json["items"] == []


def test_a_retired_code_can_be_reused_but_a_current_one_cannot(client, admin, community):
    first = make_grid(client, admin, "S-1", WEST, division_id=community)
    body = grid_body("S-1", rect(*EAST), division_id=community)
    assert client.post("/grids", json=body, headers=admin).status_code == 409
    client.post(f"/grids/{first['id']}/retire", json={}, headers=admin)
    assert client.post("/grids", json=body, headers=admin).status_code == 201


def test_a_child_outside_its_parent_is_refused_naming_the_boundary_and_nothing_is_written(
        client, admin, community, registry):
    parent = make_grid(client, admin, "S-1", WEST, division_id=community)
    before = (count(registry, Grid), count(registry, GridVersion), len(events(registry)))
    response = client.post("/grids", headers=admin, json=grid_body(
        "S-1-1", rect(100.0, 25.0, 100.06, 25.05), parent_id=parent["id"]))
    assert response.status_code == 422
    assert "outside its parent" in response.json["errors"]["boundary"][0]
    assert (count(registry, Grid), count(registry, GridVersion), len(events(registry))) == before


def test_an_overlap_is_refused_with_the_pair_and_the_area(client, admin, community, registry):
    make_grid(client, admin, "S-1", WEST, division_id=community)
    response = client.post("/grids", headers=admin, json=grid_body(
        "S-2", rect(100.04, 25.0, 100.1, 25.1), division_id=community))
    assert response.status_code == 422
    (overlap,) = response.json["overlaps"]
    assert overlap["grids"] == ["S-2", "S-1"]
    assert overlap["overlap_m2"] == pytest.approx(0.01 * 0.1 * 111_320 * 0.9063 * 110_540, rel=0.01)
    assert "overlaps grid S-1" in response.json["errors"]["boundary"][0]
    assert count(registry, Grid) == 1
    # other networks and kinds may overlap
    assert client.post("/grids", headers=admin, json=grid_body(
        "P-1", rect(*WEST), network="party", division_id=community)).status_code == 201


def test_a_redraw_over_a_neighbour_or_cutting_off_a_child_is_refused(client, admin, community, registry):
    west = make_grid(client, admin, "S-1", WEST, division_id=community)
    make_grid(client, admin, "S-2", EAST, division_id=community)
    make_grid(client, admin, "S-1-1", (100.0, 25.05, 100.05, 25.1), parent_id=west["id"])
    over = client.put(f"/grids/{west['id']}/boundary", json={"boundary": rect(100.0, 25.0, 100.06, 25.1)},
                      headers=admin)
    assert over.status_code == 422 and over.json["overlaps"][0]["grids"] == ["S-1", "S-2"]
    shrink = client.put(f"/grids/{west['id']}/boundary", json={"boundary": rect(100.0, 25.0, 100.05, 25.06)},
                        headers=admin)
    assert shrink.status_code == 422 and "S-1-1" in shrink.json["errors"]["boundary"][0]
    assert count(registry, GridVersion) == 3
    assert client.post(f"/grids/{west['id']}/retire", json={}, headers=admin).status_code == 409


@pytest.mark.parametrize("boundary, needle", [
    ({"type": "Polygon", "coordinates": [[[100.0, 25.0], [100.05, 25.1], [100.05, 25.0], [100.0, 25.1], [100.0, 25.0]]]},
     "Self-intersection"),
    ({"type": "Point", "coordinates": [100.0, 25.0]}, "Polygon or MultiPolygon"),
    ({"type": "Polygon", "coordinates": [[[100.0, 25.0], [200.0, 25.0], [100.0, 25.1], [100.0, 25.0]]]}, "longitude"),
    ({"type": "Polygon", "coordinates": "nope"}, "expected an array"),
    ({"type": "Polygon", "coordinates": [[[100.0, 25.0], [100.1, 25.0], [100.1, 25.1]]]}, "at least 4"),
])
def test_an_invalid_boundary_is_refused_naming_the_field(client, admin, community, registry, boundary, needle):
    response = client.post("/grids", headers=admin, json=grid_body("S-1", boundary, division_id=community))
    assert response.status_code == 422, response.json
    assert needle in " ".join(response.json["errors"]["boundary"])
    assert count(registry, Grid) == 0


@pytest.mark.parametrize("body, field", [
    ({"surprise": 1}, "surprise"),
    ({"level": "one"}, "level"),
    ({"kind": "dedicated"}, "institution"),
    ({"boundary": "POLYGON((...))"}, "boundary"),
    ({"valid_from": "yesterday"}, "valid_from"),
    ({"valid_from": "2999-01-01"}, "valid_from"),
    ({"level": 2}, "level"),
    ({"division_id": None}, "division_id"),
])
def test_bad_grid_bodies_get_a_422_naming_the_field(client, admin, community, body, field):
    payload = grid_body("S-1", rect(*WEST), division_id=community) | body
    response = client.post("/grids", json=payload, headers=admin)
    assert response.status_code == 422, response.json
    assert field in response.json["errors"]
    assert response.content_type == "application/problem+json"


@pytest.mark.parametrize("query", [
    "lon=200&lat=25", "lon=100&lat=-91", "lon=abc&lat=25", "lat=25", "lon=nan&lat=25",
    "lon=100&lat=25&at=someday", "lon=100&lat=25&extra=1",
])
def test_bad_locate_queries_get_a_422(client, admin, query):
    assert client.get(f"/locate?{query}", headers=admin).status_code == 422


@pytest.mark.parametrize("points", [
    [[100.0, 25.0]] * 10_001, [[100.0]], [["100", 25]], [[100, 95]], "nope", [[True, 25.0]],
])
def test_bad_locate_batches_get_a_422(client, admin, points):
    response = client.post("/locate", json={"points": points}, headers=admin)
    assert response.status_code == 422 and "points" in response.json["errors"]


def test_huge_bodies_and_non_json_are_problems_not_500s(client, admin):
    huge = client.post("/locate", data=b"[" + b"1," * 9_000_000 + b"1]",
                       headers=admin | {"Content-Type": "application/json"})
    assert huge.status_code == 413
    garbage = client.post("/grids", data=b"{not json", headers=admin | {"Content-Type": "application/json"})
    assert garbage.status_code in (400, 422)
    assert garbage.content_type == "application/problem+json"


def test_a_batch_of_ten_thousand_points_is_answered_in_order(client, admin, community):
    make_grid(client, admin, "S-1", WEST, division_id=community)
    points = [[100.0 + 0.1 * (i % 100) / 100, 25.0 + 0.1 * (i // 100) / 100] for i in range(10_000)]
    body = client.post("/locate", json={"points": points}, headers=admin).json
    assert body["count"] == 10_000
    inside = [r for r in body["results"] if r["grids"]]
    assert all(r["lon"] <= 100.05 for r in inside) and len(inside) == 5_100  # the x=100.05 column touches


def test_grid_listing_filters_and_pages_with_a_cursor(client, admin, community):
    parent = make_grid(client, admin, "S-1", WEST, division_id=community)
    for i in range(5):
        make_grid(client, admin, f"S-1-{i}", (100.0, 25.0 + 0.02 * i, 100.05, 25.02 + 0.02 * i),
                  parent_id=parent["id"])
    page = client.get(f"/grids?parent={parent['id']}&limit=2", headers=admin).json
    seen = [g["code"] for g in page["items"]]
    while page["next_cursor"]:
        page = client.get(f"/grids?parent={parent['id']}&limit=2&cursor={page['next_cursor']}",
                          headers=admin).json
        seen += [g["code"] for g in page["items"]]
    assert seen == [f"S-1-{i}" for i in range(5)]
    assert [g["code"] for g in client.get("/grids?level=1", headers=admin).json["items"]] == ["S-1"]
    assert client.get("/grids?code=S-1-3", headers=admin).json["items"][0]["level"] == 2
    assert client.get("/grids?cursor=%%%", headers=admin).status_code == 422
    coverage = client.get(f"/grids/{parent['id']}/coverage", headers=admin).json
    assert coverage["children"] == 5 and coverage["fraction"] == pytest.approx(1.0)
    assert client.get("/grids/999999", headers=admin).status_code == 404


def test_a_gap_shows_in_the_coverage(client, admin, community):
    parent = make_grid(client, admin, "S-1", WEST, division_id=community)
    make_grid(client, admin, "S-1-1", (100.0, 25.0, 100.05, 25.075), parent_id=parent["id"])
    coverage = client.get(f"/grids/{parent['id']}/coverage", headers=admin).json
    assert coverage["fraction"] == pytest.approx(0.75)
    assert coverage["uncovered_m2"] == pytest.approx(0.05 * 0.025 * 111_320 * 0.9063 * 110_540, rel=0.01)


def test_a_second_grid_head_ends_the_first_ones_term_and_history_is_kept(client, admin, community, registry):
    grid = make_grid(client, admin, "S-1", WEST, division_id=community)
    first, second, worker = (str(uuid.uuid4()) for _ in range(3))
    url = f"/grids/{grid['id']}/staff"
    assert client.post(url, json={"user_id": first, "role": "grid_head"}, headers=admin).status_code == 201
    assert client.post(url, json={"user_id": first, "role": "grid_head"}, headers=admin).status_code == 409
    assert client.post(url, json={"user_id": second, "role": "grid_head"}, headers=admin).status_code == 201
    term = client.post(url, json={"user_id": worker, "role": "grid_worker"}, headers=admin).json
    assert client.delete(f"{url}/{term['id']}", headers=admin).status_code == 200
    assert client.delete(f"{url}/{term['id']}", headers=admin).status_code == 409
    staff = client.get(url, headers=admin).json
    assert [(s["user_id"], s["role"]) for s in staff["current"]] == [(second, "grid_head")]
    assert {(s["user_id"], s["role"]) for s in staff["past"]} == {(first, "grid_head"), (worker, "grid_worker")}
    assert all(s["until"] for s in staff["past"])
    assert count(registry, StaffAssignment) == 3
    kinds = [e["type"] for e in events(registry) if e["type"].startswith("grids.staff")]
    assert kinds == ["grids.staff.assigned.v1", "grids.staff.unassigned.v1", "grids.staff.assigned.v1",
                     "grids.staff.assigned.v1", "grids.staff.unassigned.v1"]
    bad = client.post(url, json={"user_id": "not-a-uuid", "role": "grid_head"}, headers=admin)
    assert bad.status_code == 422 and "user_id" in bad.json["errors"]


def test_buildings_units_households_and_residents_are_bound_and_located(client, admin, community, registry,
                                                                       tokens):
    grid = make_grid(client, admin, "S-1", WEST, division_id=community)
    building = client.post("/buildings", headers=admin, json={
        "code": "B1", "name": "1栋", "grid_id": grid["id"],
        "location": {"type": "Point", "coordinates": [100.02, 25.02]},
        "outline": rect(100.0199, 25.0199, 100.0201, 25.0201)})
    assert building.status_code == 201, building.json
    outside = client.post("/buildings", headers=admin, json={
        "code": "B2", "name": "2栋", "grid_id": grid["id"],
        "location": {"type": "Point", "coordinates": [100.07, 25.02]}})
    assert outside.status_code == 422 and "location" in outside.json["errors"]
    point_only = client.post("/buildings", headers=admin, json={
        "code": "B3", "name": "3栋", "grid_id": grid["id"],
        "location": {"type": "Point", "coordinates": [100.03, 25.03]}})
    assert point_only.status_code == 201
    # A building known only by its point is found within a few metres of it.
    assert client.get("/locate?lon=100.03003&lat=25.03", headers=admin).json["building"]["code"] == "B3"
    assert client.get("/locate?lon=100.0305&lat=25.03", headers=admin).json["building"] is None
    unit = client.post(f"/buildings/{building.json['id']}/units", json={"code": "1", "name": "1单元"},
                       headers=admin).json
    household = client.post(f"/units/{unit['id']}/households", json={"code": "1-101", "floor": 1},
                            headers=admin).json
    resident = str(uuid.uuid4())
    bound = client.post(f"/households/{household['id']}/residents", json={"user_id": resident}, headers=admin)
    assert bound.status_code == 201
    assert client.get(f"/households/{household['id']}", headers=admin).json["residents"] == [resident]
    tree = client.get(f"/buildings/{building.json['id']}", headers=admin).json
    assert tree["units"][0]["households"][0]["residents"] == [resident]
    # Who lives where is for staff in scope only.
    for outsider in (tokens.header(("resident", "county")), tokens.header(("grid_worker", "grid:999999"))):
        assert client.get(f"/households/{household['id']}", headers=outsider).json["residents"] == []
    worker = tokens.header(("grid_worker", f"grid:{grid['id']}"))
    assert client.get(f"/households/{household['id']}", headers=worker).json["residents"] == [resident]
    located = client.get("/locate?lon=100.02005&lat=25.02", headers=admin).json
    assert located["building"]["code"] == "B1" and located["community"]["code"] == "DL-01-01"
    assert {e["type"] for e in events(registry)} >= {"grids.building.created.v1",
                                                     "grids.household.resident_bound.v1"}


def test_drawing_a_division_publishes_it_for_the_escalation_ladder(client, admin, registry):
    square = {"type": "Polygon", "coordinates": [[[99.0, 24.0], [99.1, 24.0], [99.1, 24.1], [99.0, 24.1], [99.0, 24.0]]]}
    response = client.post("/divisions", json={"code": "XX", "name": "新县", "kind": "county", "boundary": square},
                           headers=admin)
    assert response.status_code == 201, response.json
    published = events(registry, "grids.division.created.v1")
    assert [e["data"]["code"] for e in published] == ["XX"]
    assert published[0]["data"]["kind"] == "county" and published[0]["data"]["parent_id"] is None
