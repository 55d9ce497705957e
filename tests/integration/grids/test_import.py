"""Bulk import/export and the demo county, on PostgreSQL (and once on SQLite)."""

import json
import uuid

import numpy as np
import pytest
import shapely

from grids import importer
from grids.demo import generate_county
from grids.locate import locate_batch
from grids.service import spec
from grids.tables import Grid, Household, StaffAssignment, outbox
from grids.testing import rect

from .conftest import count, make_grid


def feature(code, box, **props):
    return {"type": "Feature", "geometry": rect(*box),
            "properties": {"code": code, "name": code, "level": 1, "kind": "regular",
                           "division_code": "DL-01-01"} | props}


def collection(*features):
    return {"type": "FeatureCollection", "features": list(features)}


GOOD = [feature("S-1", (100.0, 25.0, 100.05, 25.1)), feature("S-2", (100.05, 25.0, 100.1, 25.1)),
        feature("S-1-1", (100.0, 25.0, 100.05, 25.05), level=2, parent_code="S-1", division_code=None)]


def test_an_import_creates_every_grid_with_one_event_each_and_reports_coverage(client, admin, registry):
    response = client.post("/networks/security/import", json=collection(*GOOD), headers=admin)
    assert response.status_code == 200, response.json
    assert response.json["created"] == 3 and response.json["rejected"] == []
    gaps = {g["parent"]: g["fraction"] for g in response.json["coverage"]["gaps"]}
    assert gaps == {"S-1": pytest.approx(0.5)}
    assert count(registry, outbox.table, outbox.table.c.routing_key == "grids.grid.created.v1") == 3
    child = client.get("/grids?code=S-1-1", headers=admin).json["items"][0]
    parent = client.get("/grids?code=S-1", headers=admin).json["items"][0]
    assert child["parent_id"] == parent["id"] and child["division"]["code"] == "DL-01-01"


def test_one_bad_feature_rejects_the_whole_import_and_the_report_names_it(client, admin, registry):
    bad = [*GOOD, feature("S-3", (100.09, 25.0, 100.1, 25.1)),          # overlaps S-2
           feature("S-4", (100.0, 25.0, 100.0, 25.1)),                   # zero area
           feature("S-1-2", (100.0, 25.04, 100.06, 25.1), level=2, parent_code="S-1", division_code=None),
           {"type": "Feature", "properties": {"code": "S-5", "colour": "red"}, "geometry": None}]
    response = client.post("/networks/security/import", json=collection(*bad), headers=admin)
    assert response.status_code == 422
    rejected = {r["index"]: (r["code"], " ".join(r["reasons"])) for r in response.json["report"]["rejected"]}
    assert set(rejected) == {3, 4, 5, 6}
    assert rejected[3][0] == "S-3" and "overlaps grid S-2" in rejected[3][1]
    assert "zero area" in rejected[4][1] or "invalid" in rejected[4][1]
    assert "outside its parent" in rejected[5][1] and "overlaps grid S-1-1" in rejected[5][1]
    assert "unknown property 'colour'" in rejected[6][1]
    assert response.json["report"]["overlaps"][0]["overlap_m2"] > 0
    assert count(registry, Grid) == 0 and count(registry, outbox.table) == 0


def test_export_then_import_round_trips(client, admin, make_runtime, tokens):
    client.post("/networks/security/import", json=collection(*GOOD), headers=admin)
    exported = client.get("/networks/security/export", headers=admin)
    assert exported.content_type == "application/geo+json"
    again = client.post("/networks/security/import", json=exported.json, headers=admin).json
    assert (again["created"], again["redrawn"], again["unchanged"]) == (0, 0, 3)
    # and into an empty registry
    other = make_runtime(spec, db="postgres")
    from grids.testing import seed_divisions
    seed_divisions(other)
    other_client = other.app(testing=True).test_client()
    fresh = other_client.post("/networks/security/import", json=exported.json, headers=admin).json
    assert fresh["created"] == 3
    copied = other_client.get("/networks/security/export", headers=admin).json["features"]
    assert [f["properties"] for f in copied] == [f["properties"] for f in exported.json["features"]]
    assert all(shapely.from_geojson(json.dumps(a["geometry"])).equals(shapely.from_geojson(json.dumps(b["geometry"])))
               for a, b in zip(copied, exported.json["features"], strict=True))


def test_an_import_redraws_a_changed_grid_as_a_new_version(client, admin):
    client.post("/networks/security/import", json=collection(*GOOD), headers=admin)
    moved = [GOOD[0], feature("S-2", (100.05, 25.0, 100.09, 25.1))]
    report = client.post("/networks/security/import", json=collection(*moved), headers=admin).json
    assert (report["redrawn"], report["unchanged"]) == (1, 1)
    s2 = client.get("/grids?code=S-2", headers=admin).json["items"][0]
    assert s2["version"] == 2


def test_the_cli_import_prints_a_progress_bar_and_is_all_or_nothing(registry, tmp_path, capsys):
    path = tmp_path / "security.geojson"
    path.write_text(json.dumps(collection(*GOOD)))
    report = importer.import_file(registry, path, "security", progress=True)
    assert report["created"] == 3
    assert "100%" in capsys.readouterr().err
    path.write_text(json.dumps(collection(feature("S-9", (100.0, 25.0, 100.02, 25.02)))))
    assert importer.import_file(registry, path, "security", progress=False)["rejected"]
    assert count(registry, Grid) == 3


@pytest.fixture(scope="module")
def county():
    return generate_county(seed=7, scale=0.01)


def brute_force(county, lons, lats):
    geoms = shapely.from_geojson([json.dumps(g["boundary"]) for g in county.grids])
    codes = [(g["network"], g["code"]) for g in county.grids]
    return [sorted(codes[j] for j in np.flatnonzero(shapely.intersects_xy(geoms, x, y)))
            for x, y in zip(lons, lats, strict=True)]


def random_points(county, n, seed=3):
    minx, miny, maxx, maxy = shapely.from_geojson(json.dumps(county.divisions[0]["boundary"])).bounds
    rng = np.random.default_rng(seed)
    return rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)


def load(runtime, county):
    people = {s["key"]: str(uuid.uuid5(uuid.NAMESPACE_URL, s["key"])) for s in county.staff}
    return importer.import_county(runtime, county, user_id_of=people.get)


def test_a_demo_county_loads_and_locate_matches_brute_force_in_every_network_and_level(
        make_runtime, county, tokens):
    registry = make_runtime(spec, db="postgres")
    summary = load(registry, county)
    counts = county.counts()
    assert summary["households"] == counts["households"] == count(registry, Household)
    assert count(registry, StaffAssignment) == len(county.staff)
    assert count(registry, Grid) == len(county.grids)
    client = registry.app(testing=True).test_client()
    lons, lats = random_points(county, 2_000)
    body = client.post("/locate", json={"points": np.column_stack([lons, lats]).tolist()},
                       headers=tokens.header(("grid_worker", "grid:1"))).json
    got = [sorted((g["network"], g["code"]) for g in r["grids"]) for r in body["results"]]
    assert got == brute_force(county, lons, lats)
    inside = [r for r in body["results"] if r["community"]]
    assert inside and all(r["street"] for r in inside)
    # a point deep inside a level-3 grid gets levels 1, 2, 3 of its network and the other networks too
    leaf = next(g for g in county.grids if g["level"] == 3 and g["kind"] == "regular")
    x, y = shapely.from_geojson(json.dumps(leaf["boundary"])).representative_point().coords[0]
    one = client.get(f"/locate?lon={x}&lat={y}", headers=tokens.header(("resident", "county"))).json
    levels = {(g["network"], g["level"]) for g in one["grids"]}
    assert {(leaf["network"], 1), (leaf["network"], 2), (leaf["network"], 3)} <= levels
    assert {g["network"] for g in one["grids"]} == {"party", "security", "urban"}


def test_the_demo_county_also_loads_on_sqlite_and_the_in_process_batch_agrees(make_runtime, county):
    runtime = make_runtime(spec, db="sqlite")
    load(runtime, county)
    index = runtime.extras["registry"].current()
    lons, lats = random_points(county, 1_000, seed=5)
    result = locate_batch(index, lons, lats)
    got = [sorted((g.network, g.code) for g in result.grids_of(i)) for i in range(len(lons))]
    assert got == brute_force(county, lons, lats)


def test_a_community_admin_imports_only_inside_their_subtree(client, admin, tokens, community):
    west = make_grid(client, admin, "S-1", (100.0, 25.0, 100.05, 25.1), division_id=community)
    east = make_grid(client, admin, "S-2", (100.05, 25.0, 100.1, 25.1), division_id=community)
    mine = tokens.header(("community_admin", f"grid:{west['id']}"))
    inside = feature("S-1-1", (100.0, 25.0, 100.05, 25.05), level=2, parent_code="S-1", division_code=None)
    outside = feature("S-2-1", (100.05, 25.0, 100.1, 25.05), level=2, parent_code="S-2", division_code=None)
    assert client.post("/networks/security/import", json=collection(inside), headers=mine).status_code == 200
    refused = client.post("/networks/security/import", json=collection(outside), headers=mine)
    assert refused.status_code == 422
    assert "outside your scope" in refused.json["report"]["rejected"][0]["reasons"][0]
    assert east["id"]


def test_importing_a_county_publishes_every_division_for_intake_and_dispatch(make_runtime):
    import json as _json

    from sqlalchemy import select as _select

    from grids.demo import generate_county
    from grids.importer import import_county
    from grids.service import spec
    from grids.tables import outbox

    runtime = make_runtime(spec, db="postgres")
    county = generate_county(seed=3, scale=0.01)
    import_county(runtime, county)
    with runtime.db.sessions() as session:
        bodies = session.execute(_select(outbox.table.c.body).where(
            outbox.table.c.routing_key == "grids.division.created.v1")).scalars().all()
    published = {_json.loads(b)["data"]["code"] for b in bodies}
    assert published == {d["code"] for d in county.divisions}
