import json

import pytest
import shapely

from gridgeo import (
    LocateIndex,
    check_inside_parent,
    coverage,
    find_overlapping_pairs,
    parse_boundary,
    parse_point_geojson,
)
from grids.demo import NETWORKS, TARGETS, County, generate_county, validate_county

SCALE = 0.01


@pytest.fixture(scope="module")
def county() -> County:
    return generate_county(seed=7, scale=SCALE)


def test_deterministic_and_seed_sensitive(county):
    again = generate_county(seed=7, scale=SCALE)
    assert again.digest() == county.digest()
    assert generate_county(seed=8, scale=SCALE).digest() != county.digest()
    json.loads(county.to_json())  # JSON-serialisable


def test_passes_validators(county):
    assert validate_county(county) == []


def test_validator_catches_broken_county(county):
    bad = County(**{k: v for k, v in vars(county).items()})
    bad.grids = [dict(g) for g in county.grids]
    # swap two level-1 grids' boundaries between communities -> outside parent, gaps
    l1 = [g for g in bad.grids if g["network"] == "security" and g["level"] == 1]
    a = next(g for g in l1 if g["division_code"] != l1[0]["division_code"])
    l1[0]["boundary"], a["boundary"] = a["boundary"], l1[0]["boundary"]
    msgs = " ".join(p.message for p in validate_county(bad))
    assert "outside its parent" in msgs and "cover" in msgs


def test_tree_shape_and_codes(county):
    kinds = [d["kind"] for d in county.divisions]
    assert kinds.count("county") == 1 and kinds.count("street") >= 2 and kinds.count("community") >= 4
    codes = {d["code"] for d in county.divisions}
    assert all(d["parent_code"] in codes for d in county.divisions if d["kind"] != "county")
    assert all(d["name"].endswith(("街道", "镇", "社区", "村", "市")) for d in county.divisions)
    assert [n["code"] for n in county.networks] == list(NETWORKS)
    for net in NETWORKS:
        grid_codes = [g["code"] for g in county.grids if g["network"] == net]
        assert len(grid_codes) == len(set(grid_codes))
    lon0, lat0, lon1, lat1 = parse_boundary(county.divisions[0]["boundary"]).bounds
    assert 100.0 <= lon0 < lon1 <= 100.5 and 25.4 <= lat0 < lat1 <= 26.0


def test_proportions(county):
    c = county.counts()
    for key, total in TARGETS.items():
        assert c[key] == pytest.approx(total * SCALE, rel=0.15), key
    assert c["security.level1"] > c["party.level1"] > c["urban.level1"]
    assert c["level2"] > 2.5 * c["level1"]
    dedicated = [g for g in county.grids if g["kind"] == "dedicated"]
    assert all(g["level"] == 3 and g["institution"] for g in dedicated)
    n_grids = len(county.grids)
    assert c["grid_head"] == n_grids and n_grids <= c["grid_worker"] <= 3 * n_grids
    assert c["building_manager"] == c["buildings"] >= 5 * c["security.level1"]


def test_networks_differ_and_nest(county):
    by = {(g["network"], g["code"]): parse_boundary(g["boundary"]) for g in county.grids}
    sec = [geom for (n, _), geom in by.items() if n == "security"]
    par = [geom for (n, _), geom in by.items() if n == "party"]
    assert not any(shapely.equals(a, b) for a in sec[:20] for b in par[:20])
    divs = {d["code"]: parse_boundary(d["boundary"]) for d in county.divisions}
    for g in county.grids:
        parent = divs[g["division_code"]] if g["parent_code"] is None else by[(g["network"], g["parent_code"])]
        assert check_inside_parent(by[(g["network"], g["code"])], parent) == []
    for net in NETWORKS:
        for comm in [d for d in county.divisions if d["kind"] == "community"]:
            kids = [by[(net, g["code"])] for g in county.grids if g["network"] == net and g["level"] == 1 and g["division_code"] == comm["code"]]
            assert coverage(divs[comm["code"]], kids).fraction == pytest.approx(1.0, abs=1e-6)
        ded = [(g["code"], by[(net, g["code"])]) for g in county.grids if g["network"] == net and g["kind"] == "dedicated"]
        assert find_overlapping_pairs(ded) == []


def test_buildings_and_staff(county):
    grids = {g["code"]: g for g in county.grids if g["network"] == "security"}
    idx_items = [(i, parse_boundary(g["boundary"])) for i, g in enumerate(county.grids)]
    idx = LocateIndex(idx_items)
    for b in county.buildings[:40]:
        pt = parse_point_geojson(b["location"])
        hits = {county.grids[k]["code"] for k in idx.locate_one(pt.x, pt.y)}
        assert b["grid_code"] in hits and b["grid_code"] in grids
        assert 1 <= len(b["units"]) <= 4
        for u in b["units"]:
            assert 2 <= len(u["households"]) <= 12
            assert len({h["code"] for h in u["households"]}) == len(u["households"])
        if b["outline"]:
            assert parse_boundary(b["outline"]).covers(pt)
    people = {}
    for s in county.staff:
        assert s["key"].startswith("p") and len(s["phone"]) == 11 and s["phone"].startswith("13")
        assert people.setdefault(s["key"], (s["name"], s["phone"])) == (s["name"], s["phone"])
    phones = [p[1] for p in people.values()]
    assert len(set(phones)) == len(phones)


def test_feature_collections(county):
    fcs = county.to_feature_collections()
    assert set(fcs) == set(NETWORKS)
    total = sum(len(fc["features"]) for fc in fcs.values())
    assert total == len(county.grids)
    f = fcs["security"]["features"][0]
    assert f["type"] == "Feature" and "boundary" not in f["properties"]
    assert parse_boundary(f["geometry"]).is_valid
    assert f["properties"]["network"] == "security"
