import json

import numpy as np
import pytest
import shapely

from grids.demo import generate_county
from grids.locate import RegistryIndex, locate_batch


@pytest.fixture(scope="module")
def county():
    return generate_county(seed=11, scale=0.01)


@pytest.fixture(scope="module")
def index(county):
    return RegistryIndex.from_county(county)


def test_locate_batch_matches_brute_force_on_random_points(county, index):
    geoms = shapely.from_geojson([json.dumps(g["boundary"]) for g in county.grids])
    county_geom = shapely.from_geojson(json.dumps(county.divisions[0]["boundary"]))
    minx, miny, maxx, maxy = county_geom.bounds
    rng = np.random.default_rng(1)
    lons, lats = rng.uniform(minx, maxx, 3000), rng.uniform(miny, maxy, 3000)
    result = locate_batch(index, lons, lats)
    for i, (x, y) in enumerate(zip(lons, lats, strict=True)):
        expected = sorted(county.grids[j]["code"] for j in np.flatnonzero(shapely.intersects_xy(geoms, x, y)))
        assert sorted(g.code for g in result.grids_of(i)) == expected
        assert (result.community[i] >= 0) == bool(shapely.intersects_xy(county_geom, x, y))


def test_every_point_inside_the_county_gets_one_grid_per_network_and_level_chain(county, index):
    pts = shapely.get_coordinates(shapely.point_on_surface(
        shapely.from_geojson([json.dumps(g["boundary"]) for g in county.grids if g["level"] == 2])))
    result = locate_batch(index, pts[:, 0], pts[:, 1])
    for i in range(len(pts)):
        grids = result.grids_of(i)
        slots = [(g.network, g.level, g.kind) for g in grids]
        assert len(slots) == len(set(slots))  # one per network, level and kind
        assert {g.network for g in grids if g.level == 1} == {"party", "security", "urban"}
    items = json.loads(result.to_json())
    assert items["count"] == len(pts) and items["results"][0]["street"]["code"].startswith("DL-")


def test_points_outside_everything_and_empty_batches_are_fine(index):
    result = locate_batch(index, [0.0, 179.0], [0.0, -89.0])
    assert result.grids_of(0) == [] and result.community.tolist() == [-1, -1]
    assert locate_batch(index, [], []).to_json().endswith('"results":[]}')
