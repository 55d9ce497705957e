import math

import numpy as np
import pytest
import shapely
from shapely.geometry import Point, box, mapping

from gridgeo import (
    GeometryError,
    LocateIndex,
    area_m2,
    area_m2_many,
    check_inside_parent,
    coverage,
    find_overlapping_pairs,
    find_overlaps,
    gaps,
    parse_boundary,
    parse_point,
)

LON, LAT = 100.2, 25.6


def sq(x, y, d=0.001):
    return box(x, y, x + d, y + d)


def poly(coords):
    return {"type": "Polygon", "coordinates": [coords]}


# ---- parsing ---------------------------------------------------------------


def test_parse_valid_polygon_snaps_to_precision():
    g = parse_boundary(poly([[100.00000001, 25.0], [100.001, 25.0], [100.001, 25.001], [100.00000001, 25.0 + 0.001], [100.00000001, 25.0]]))
    assert g.is_valid and g.geom_type == "Polygon"
    assert shapely.get_coordinates(g)[:, 0].min() == pytest.approx(100.0, abs=1e-12)


def test_parse_multipolygon():
    gj = mapping(shapely.MultiPolygon([sq(LON, LAT), sq(LON + 0.01, LAT)]))
    g = parse_boundary(gj)
    assert g.geom_type == "MultiPolygon" and len(g.geoms) == 2


def test_bowtie_rejected_with_reason():
    bowtie = poly([[100.2, 25.6], [100.21, 25.61], [100.21, 25.6], [100.2, 25.61], [100.2, 25.6]])
    with pytest.raises(GeometryError) as ei:
        parse_boundary(bowtie)
    assert ei.value.field == "boundary"
    assert "Self-intersection" in ei.value.message
    assert isinstance(ei.value, ValueError)


@pytest.mark.parametrize(
    "gj, words",
    [
        (poly([[100.2, 25.6], [100.21, 25.6], [100.21, 25.61], [100.2, 25.61]]), "not closed"),
        (poly([[200, 25.6], [100.21, 25.6], [100.21, 25.61], [200, 25.6]]), "longitude 200"),
        (poly([[100.2, 95], [100.21, 25.6], [100.21, 25.61], [100.2, 95]]), "latitude 95"),
        (poly([[100.2, 25.6], [100.21, 25.6], [100.2, 25.6]]), "at least 4"),
        (poly([[100.2, 25.6], ["x", 25.6], [100.21, 25.61], [100.2, 25.6]]), "numbers"),
        ({"type": "Point", "coordinates": [100.2, 25.6]}, "Polygon or MultiPolygon"),
        ({"type": "Polygon", "coordinates": []}, "empty"),
        ({"type": "MultiPolygon", "coordinates": []}, "empty"),
        ([1, 2], "geometry object"),
    ],
)
def test_bad_boundaries_rejected(gj, words):
    with pytest.raises(GeometryError) as ei:
        parse_boundary(gj)
    assert words in ei.value.message


def test_too_many_vertices_rejected():
    t = np.linspace(0, 2 * np.pi, 100_001, endpoint=False)
    ring = np.column_stack([LON + 0.01 * np.cos(t), LAT + 0.01 * np.sin(t)]).tolist()
    ring.append(ring[0])
    with pytest.raises(GeometryError, match="too many vertices"):
        parse_boundary(poly(ring))


def test_parse_point():
    assert parse_point(100.2, 25.6).equals(Point(100.2, 25.6))
    with pytest.raises(GeometryError):
        parse_point(181, 0)
    with pytest.raises(GeometryError):
        parse_point(0, float("nan"))
    with pytest.raises(GeometryError):
        parse_point(True, 0)


# ---- areas and validation --------------------------------------------------


def test_area_m2_of_small_square():
    expected = 0.001 * 111_320 * math.cos(math.radians(LAT + 0.0005)) * 0.001 * 110_540
    assert area_m2(sq(LON, LAT)) == pytest.approx(expected, rel=1e-9)
    assert 9_500 < expected < 11_500
    many = area_m2_many([sq(LON, LAT), shapely.Polygon(), None])
    assert many[0] == pytest.approx(expected) and many[1] == 0 and many[2] == 0


def test_overlapping_pair_found_with_area():
    a, b, c = sq(LON, LAT), sq(LON + 0.0005, LAT), sq(LON + 0.001, LAT)  # a∩b half, b∩c half, a/c touch
    pairs = find_overlapping_pairs([("a", a), ("b", b), ("c", c)])
    half = area_m2(a) / 2
    assert [(p[0], p[1]) for p in pairs] == [("a", "b"), ("b", "c")]
    for p in pairs:
        assert p[2] == pytest.approx(half, rel=1e-3)


def test_find_overlaps_tolerance_and_tree_path():
    a = sq(LON, LAT)
    tiny = box(LON + 0.001 - 1e-6, LAT + 0.001 - 1e-6, LON + 0.002, LAT + 0.002)  # ~0.01 m² corner
    neighbours = [("t", tiny)] + [(f"n{i}", sq(LON + 0.01 * (i + 1), LAT)) for i in range(30)] + [("o", sq(LON + 0.0009, LAT))]
    found = find_overlaps(a, neighbours)
    assert [f[0] for f in found] == ["o"]
    assert found[0][1] == pytest.approx(area_m2(a) / 10, rel=1e-2)
    assert [f[0] for f in find_overlaps(a, neighbours, tolerance_m2=0, sliver_m=0)] == ["t", "o"]
    # 10 cm wide strip along a 110 m edge (~11 m²) is a real overlap, not a sliver
    strip = box(LON + 0.001 - 1e-6, LAT, LON + 0.002, LAT + 0.001)
    assert find_overlaps(a, [("s", strip)])[0][1] == pytest.approx(area_m2(a) / 1000, rel=1e-2)


def test_sliver_overlap_ignored():
    a = sq(LON, LAT)
    b = box(LON + 0.001 - 1e-7, LAT, LON + 0.002, LAT + 0.001)  # 1 cm wide, ~1.1 m²
    assert find_overlapping_pairs([(1, a), (2, b)]) == []
    assert find_overlapping_pairs([(1, a), (2, b)], sliver_m=0, tolerance_m2=0)


def test_child_sticking_out_detected():
    parent = sq(LON, LAT)
    inside = sq(LON + 0.0002, LAT + 0.0002, 0.0005)
    out = sq(LON + 0.0008, LAT + 0.0002, 0.0005)  # 0.0003 of 0.0005 width outside
    assert check_inside_parent(inside, parent) == []
    assert check_inside_parent(parent, parent) == []
    probs = check_inside_parent(out, parent, "boundary")
    assert len(probs) == 1 and probs[0].field == "boundary"
    assert probs[0].detail["outside_m2"] == pytest.approx(area_m2(out) * 0.6, rel=1e-2)


def test_coverage_half_and_full():
    parent = sq(LON, LAT)
    left = box(LON, LAT, LON + 0.0005, LAT + 0.001)
    right = box(LON + 0.0005, LAT, LON + 0.001, LAT + 0.001)
    cov = coverage(parent, [left])
    assert cov.fraction == pytest.approx(0.5, abs=1e-9)
    assert cov.uncovered_m2 == pytest.approx(area_m2(parent) / 2, rel=1e-3)
    assert coverage(parent, [left, right]).fraction == pytest.approx(1.0)
    assert coverage(parent, []).fraction == 0.0
    g = gaps(parent, [left])
    assert len(g) == 1 and g[0].equals(right)


# ---- LocateIndex -----------------------------------------------------------


def _nested_items():
    # a 2x2 tiling, a parent over all of it, a nested child, a hole-y ring, a far polygon
    items = [
        (10, box(0, 0, 2, 2)),
        (1, box(0, 0, 1, 1)),
        (2, box(1, 0, 2, 1)),
        (3, box(0, 1, 1, 2)),
        (4, shapely.Polygon([(1, 1), (2, 1), (2, 2), (1.3, 2), (1, 1)])),
        (20, box(0.2, 0.2, 0.6, 0.6)),
        (30, box(1.1, 0.1, 1.9, 0.9).difference(box(1.3, 0.3, 1.7, 0.7))),
        (40, shapely.MultiPolygon([box(5, 5, 6, 6), box(7, 7, 8, 8)])),
    ]
    t = np.linspace(0, 2 * np.pi, 200, endpoint=False)  # a many-edged polygon (shapely path)
    items.append((50, shapely.Polygon(np.column_stack([3 + np.cos(t), 3 + np.sin(t)]))))
    return [(k, shapely.set_precision(g, 1e-7)) for k, g in items]


def test_locate_matches_brute_force():
    items = _nested_items()
    idx = LocateIndex(items)
    rng = np.random.default_rng(3)
    lon, lat = rng.uniform(-0.5, 8.5, 4000), rng.uniform(-0.5, 8.5, 4000)
    lists = idx.locate_lists(lon, lat)
    for x, y, got in zip(lon, lat, lists, strict=False):
        p = Point(x, y)
        expected = sorted(k for k, g in items if g.intersects(p))
        assert got == expected, (x, y)
    pi, keys = idx.locate_many(lon, lat)
    assert len(pi) == sum(len(hits) for hits in lists) and np.all(np.diff(pi) >= 0)


def test_locate_boundaries_and_outside():
    idx = LocateIndex(_nested_items())
    assert idx.locate_one(0.5, 0.5) == [1, 10, 20]
    assert idx.locate_one(1.0, 0.5) == [1, 2, 10]  # shared edge: both sides
    assert idx.locate_one(1.0, 1.0) == [1, 2, 3, 4, 10]  # shared corner
    assert idx.locate_one(1.5, 0.5) == [2, 10]  # in the hole of 30
    assert idx.locate_one(1.2, 0.2) == [2, 10, 30]
    assert idx.locate_one(7.5, 7.5) == [40]
    assert idx.locate_one(3.0, 3.0) == [50]
    assert idx.locate_one(6.5, 6.5) == []
    assert idx.locate_one(-1, -1) == []
    assert idx.locate_one(float("nan"), 0) == []
    pi, keys = idx.locate_many(np.array([]), np.array([]))
    assert len(pi) == 0 and len(LocateIndex([])) == 0
    assert LocateIndex([]).locate_one(0, 0) == []


def test_locate_on_real_tiling_matches_shapely():
    # Voronoi cells with slanted shared edges: every point inside the parent hits ≥ 1 cell
    parent = box(LON, LAT, LON + 0.05, LAT + 0.05)
    rng = np.random.default_rng(5)
    seeds = shapely.multipoints(rng.uniform(0, 0.05, (60, 2)) + [LON, LAT])
    cells = [shapely.set_precision(c.intersection(parent), 1e-7) for c in shapely.voronoi_polygons(seeds, extend_to=parent).geoms]
    idx = LocateIndex(list(enumerate(cells)))
    x, y = rng.uniform(LON, LON + 0.05, 3000), rng.uniform(LAT, LAT + 0.05, 3000)
    lists = idx.locate_lists(x, y)
    tree = shapely.STRtree(cells)
    qi, ti = tree.query(shapely.points(x, y), predicate="intersects")
    expected = [[] for _ in x]
    for a, b in zip(qi, ti, strict=False):
        expected[a].append(int(b))
    assert lists == [sorted(e) for e in expected]
    assert all(len(hits) >= 1 for hits in lists)


def test_parsed_boundaries_that_overlap_by_square_kilometres_are_reported():
    from gridgeo import find_overlaps, parse_boundary

    def square(x0, y0, size):
        return {"type": "Polygon", "coordinates": [[[x0, y0], [x0 + size, y0], [x0 + size, y0 + size],
                                                    [x0, y0 + size], [x0, y0]]]}

    a = parse_boundary(square(100.0, 25.0, 0.05))
    b = parse_boundary(square(100.02, 25.0, 0.05))
    overlaps = find_overlaps(a, [("b", b)])
    assert overlaps and overlaps[0][0] == "b" and overlaps[0][1] > 1e6
