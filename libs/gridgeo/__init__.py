"""Pure geometry for grids: parsing, areas, validation and point location.

Everything here works on WGS84 lon/lat coordinates (degrees) and imports only
shapely, numpy and the standard library, so that the HTTP layer, the importer,
the demo generator and batch jobs can all share it.

Conventions
-----------
* Boundaries are shapely ``Polygon`` / ``MultiPolygon`` snapped to a 1e-7°
  grid (~1 cm), see :data:`PRECISION`.  Two boundaries that were drawn along
  the same edge therefore share exactly the same vertices.
* Areas are square metres computed with a local equirectangular projection
  around the geometry's centroid latitude (see :func:`area_m2`), which is
  accurate to well under 1 % at county scale.
* Validation is tolerant to floating point: an overlap (or the part of a child
  outside its parent) counts only when its area exceeds a tolerance in m²
  *and* it is not a mere sliver thinner than :data:`SLIVER_WIDTH_M`.  Slivers
  of that kind appear when vertices lying on a neighbour's edge are snapped to
  the 1 cm grid (T-junctions), and must not block a save.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, NamedTuple

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Point, Polygon, mapping
from shapely.strtree import STRtree
from shapely.validation import explain_validity

__all__ = [
    "PRECISION",
    "MAX_VERTICES",
    "OVERLAP_TOLERANCE_M2",
    "CONTAINMENT_TOLERANCE_M2",
    "SLIVER_WIDTH_M",
    "M_PER_DEG_LAT",
    "M_PER_DEG_LON_EQUATOR",
    "GeometryError",
    "Problem",
    "Coverage",
    "parse_boundary",
    "parse_point",
    "parse_point_geojson",
    "to_geojson",
    "area_m2",
    "area_m2_many",
    "is_sliver",
    "check_inside_parent",
    "find_overlaps",
    "check_no_overlaps",
    "find_overlapping_pairs",
    "coverage",
    "gaps",
    "LocateIndex",
]

#: Coordinate grid (degrees) every parsed boundary is snapped to: ~1.1 cm.
PRECISION = 1e-7
#: Upper bound on the number of positions in one boundary.
MAX_VERTICES = 100_000
#: Overlaps up to this many m² are treated as floating-point noise.
OVERLAP_TOLERANCE_M2 = 1.0
#: A child may stick out of its parent by up to this many m².
CONTAINMENT_TOLERANCE_M2 = 0.5
#: Overlaps / protrusions thinner than this (metres) are snapping slivers.
SLIVER_WIDTH_M = 0.05

M_PER_DEG_LAT = 110_540.0
M_PER_DEG_LON_EQUATOR = 111_320.0

_POLYGONAL = (Polygon, MultiPolygon)


# --------------------------------------------------------------------------
# errors and problems
# --------------------------------------------------------------------------


class GeometryError(ValueError):
    """A boundary or location that cannot be accepted.

    ``field`` names the request field (e.g. ``"boundary"``), ``message`` is a
    human-readable English explanation suitable for an API error body.
    """

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Problem:
    """One finding of a validation function (not an exception)."""

    field: str
    message: str
    detail: dict[str, Any] = dc_field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "message": self.message, "detail": dict(self.detail)}


class Coverage(NamedTuple):
    """How much of a parent its children cover (the "gap report")."""

    fraction: float  # 0..1 of the parent's area covered by the union of children
    uncovered_m2: float  # parent area not covered by any child, m²


# --------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_position(pos: Any, where: str, fieldname: str) -> tuple[float, float]:
    if not isinstance(pos, (list, tuple)) or not 2 <= len(pos) <= 3:
        raise GeometryError(
            fieldname, f"{where}: a position must be an array [lon, lat], got {_short(pos)}"
        )
    if not all(_is_number(c) for c in pos):
        raise GeometryError(fieldname, f"{where}: coordinates must be numbers, got {_short(pos)}")
    lon, lat = float(pos[0]), float(pos[1])
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise GeometryError(fieldname, f"{where}: coordinates must be finite, got {_short(pos)}")
    if not -180.0 <= lon <= 180.0:
        raise GeometryError(fieldname, f"{where}: longitude {lon:g} is outside -180..180")
    if not -90.0 <= lat <= 90.0:
        raise GeometryError(fieldname, f"{where}: latitude {lat:g} is outside -90..90")
    return lon, lat


def _short(v: Any, limit: int = 60) -> str:
    s = repr(v)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _parse_rings(rings: Any, where: str, fieldname: str, budget: list[int]) -> list[list[tuple[float, float]]]:
    if not isinstance(rings, (list, tuple)):
        raise GeometryError(fieldname, f"{where}: expected an array of linear rings")
    if len(rings) == 0:
        raise GeometryError(fieldname, f"{where}: polygon is empty (no rings)")
    out = []
    for r, ring in enumerate(rings):
        rwhere = f"{where} ring {r}"
        if not isinstance(ring, (list, tuple)):
            raise GeometryError(fieldname, f"{rwhere}: expected an array of positions")
        budget[0] -= len(ring)
        if budget[0] < 0:
            raise GeometryError(
                fieldname, f"too many vertices: more than {MAX_VERTICES} positions in one boundary"
            )
        if len(ring) < 4:
            raise GeometryError(
                fieldname, f"{rwhere}: a linear ring needs at least 4 positions, got {len(ring)}"
            )
        pts = [_check_position(p, f"{rwhere} position {i}", fieldname) for i, p in enumerate(ring)]
        if pts[0] != pts[-1]:
            raise GeometryError(
                fieldname,
                f"{rwhere}: ring is not closed (first position {list(pts[0])} "
                f"differs from last {list(pts[-1])})",
            )
        out.append(pts)
    return out


def parse_boundary(geojson: Any, field: str = "boundary", *, max_vertices: int = MAX_VERTICES):
    """Parse a GeoJSON Polygon/MultiPolygon geometry (WGS84) into shapely.

    The result is valid, non-empty, polygonal and snapped to :data:`PRECISION`.
    Raises :class:`GeometryError` naming the problem otherwise.
    """
    if not isinstance(geojson, dict):
        raise GeometryError(
            field, f"expected a GeoJSON geometry object, got {type(geojson).__name__}"
        )
    gtype = geojson.get("type")
    if gtype not in ("Polygon", "MultiPolygon"):
        raise GeometryError(
            field, f"expected a GeoJSON geometry of type Polygon or MultiPolygon, got {_short(gtype)}"
        )
    if "coordinates" not in geojson:
        raise GeometryError(field, "missing 'coordinates'")
    coords = geojson["coordinates"]
    budget = [max_vertices]
    if gtype == "Polygon":
        rings = _parse_rings(coords, "polygon", field, budget)
        geom = Polygon(rings[0], rings[1:])
    else:
        if not isinstance(coords, (list, tuple)):
            raise GeometryError(field, "MultiPolygon coordinates must be an array of polygons")
        if len(coords) == 0:
            raise GeometryError(field, "boundary is empty (MultiPolygon without polygons)")
        polys = []
        for k, prings in enumerate(coords):
            rings = _parse_rings(prings, f"polygon {k}", field, budget)
            polys.append(Polygon(rings[0], rings[1:]))
        geom = MultiPolygon(polys)
    if geom.is_empty:
        raise GeometryError(field, "boundary is empty")
    if not geom.is_valid:
        raise GeometryError(field, f"invalid geometry: {explain_validity(geom)}")
    if geom.area == 0.0:
        raise GeometryError(field, "boundary has zero area")
    snapped = shapely.set_precision(geom, PRECISION)
    if snapped.is_empty or not isinstance(snapped, _POLYGONAL) or snapped.area == 0.0:
        raise GeometryError(
            field, f"boundary collapses to nothing at the {PRECISION:g}° coordinate precision"
        )
    if not snapped.is_valid:  # set_precision keeps validity; belt and braces
        raise GeometryError(field, f"invalid geometry after snapping: {explain_validity(snapped)}")
    # Keep the snapped coordinates but drop the precision grid shapely attaches:
    # with it, GEOS erodes whole polygons to EMPTY in the negative buffers the
    # sliver test uses, and every real overlap would pass for a sliver.
    return shapely.set_precision(snapped, 0)


def parse_point(lon: Any, lat: Any, field: str = "location") -> Point:
    """A shapely Point from lon/lat with type and range checks."""
    lon_f, lat_f = _check_position([lon, lat], "point", field)
    return Point(lon_f, lat_f)


def parse_point_geojson(geojson: Any, field: str = "location") -> Point:
    """A shapely Point from a GeoJSON ``{"type": "Point", "coordinates": [lon, lat]}``."""
    if not isinstance(geojson, dict) or geojson.get("type") != "Point":
        got = geojson.get("type") if isinstance(geojson, dict) else type(geojson).__name__
        raise GeometryError(field, f"expected a GeoJSON Point, got {_short(got)}")
    c = geojson.get("coordinates")
    if not isinstance(c, (list, tuple)) or not 2 <= len(c) <= 3:
        raise GeometryError(field, "Point coordinates must be [lon, lat]")
    return parse_point(c[0], c[1], field)


def to_geojson(geom, ndigits: int = 7) -> dict:
    """GeoJSON dict of a shapely geometry with coordinates rounded to ``ndigits``."""
    return _round_coords(mapping(geom), ndigits)


def _round_coords(obj: Any, nd: int) -> Any:
    if isinstance(obj, dict):
        return {k: _round_coords(v, nd) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        if obj and isinstance(obj[0], float):
            return [round(c, nd) for c in obj]
        return [_round_coords(v, nd) for v in obj]
    return obj


# --------------------------------------------------------------------------
# areas
# --------------------------------------------------------------------------


def _m2_per_deg2(lat_deg):
    return M_PER_DEG_LON_EQUATOR * np.cos(np.radians(lat_deg)) * M_PER_DEG_LAT


def area_m2(geom) -> float:
    """Area in m² of a WGS84 geometry (local equirectangular approximation)."""
    if geom is None or geom.is_empty:
        return 0.0
    a = geom.area
    if a == 0.0:
        return 0.0
    return float(a * _m2_per_deg2(geom.centroid.y))


def area_m2_many(geoms) -> np.ndarray:
    """Vectorised :func:`area_m2` for an array/sequence of geometries (None → 0)."""
    arr = np.asarray(geoms, dtype=object)
    out = np.zeros(arr.shape, dtype=float)
    ok = ~(shapely.is_missing(arr) | shapely.is_empty(arr))
    if ok.any():
        sub = arr[ok]
        out[ok] = shapely.area(sub) * _m2_per_deg2(shapely.get_y(shapely.centroid(sub)))
    return out


def _deg_for_m(width_m: float, lat: float) -> float:
    """Degrees corresponding to ``width_m`` along a parallel (the larger value)."""
    return width_m / (M_PER_DEG_LON_EQUATOR * max(math.cos(math.radians(lat)), 1e-6))


def is_sliver(geom, width_m: float = SLIVER_WIDTH_M) -> bool:
    """True if ``geom`` is nowhere thicker than ``width_m`` metres."""
    if geom is None or geom.is_empty:
        return True
    d = _deg_for_m(width_m / 2.0, geom.centroid.y)
    eroded = shapely.buffer(geom, -d, quad_segs=2)
    return eroded.is_empty or area_m2(eroded) < 1e-3


def _slivers(geoms: np.ndarray, width_m: float) -> np.ndarray:
    if len(geoms) == 0:
        return np.zeros(0, dtype=bool)
    lat = shapely.bounds(geoms)[:, [1, 3]].mean(axis=1)
    d = (width_m / 2.0) / (M_PER_DEG_LON_EQUATOR * np.maximum(np.cos(np.radians(lat)), 1e-6))
    eroded = shapely.buffer(geoms, -d, quad_segs=2)
    return shapely.is_empty(eroded) | (area_m2_many(eroded) < 1e-3)


# --------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------


def check_inside_parent(
    child,
    parent,
    field: str = "boundary",
    *,
    tolerance_m2: float = CONTAINMENT_TOLERANCE_M2,
    sliver_m: float = SLIVER_WIDTH_M,
) -> list[Problem]:
    """Problems if ``child`` sticks out of ``parent`` (beyond tolerance)."""
    if shapely.covers(parent, child):
        return []
    outside = shapely.difference(child, parent)
    out_m2 = area_m2(outside)
    if out_m2 <= tolerance_m2 or is_sliver(outside, sliver_m):
        return []
    minx, miny, maxx, maxy = outside.bounds
    return [
        Problem(
            field,
            f"boundary extends {out_m2:,.1f} m² outside its parent",
            {
                "outside_m2": round(out_m2, 3),
                "outside_fraction": round(out_m2 / max(area_m2(child), 1e-12), 6),
                "outside_bbox": [minx, miny, maxx, maxy],
            },
        )
    ]


_TREE_THRESHOLD = 16


def find_overlaps(
    candidate,
    neighbours: Sequence[tuple[Any, Any]],
    *,
    tolerance_m2: float = OVERLAP_TOLERANCE_M2,
    sliver_m: float = SLIVER_WIDTH_M,
) -> list[tuple[Any, float]]:
    """``(neighbour_id, overlap_m2)`` for every neighbour overlapping ``candidate``.

    Overlaps not above ``tolerance_m2`` or thinner than ``sliver_m`` are ignored.
    Result keeps the order of ``neighbours``.
    """
    if not neighbours or candidate is None or candidate.is_empty:
        return []
    ids = [n[0] for n in neighbours]
    geoms = np.asarray([n[1] for n in neighbours], dtype=object)
    if len(geoms) > _TREE_THRESHOLD:
        idx = np.sort(STRtree(geoms).query(candidate, predicate="intersects"))
    else:
        idx = np.nonzero(shapely.intersects(candidate, geoms))[0]
    if len(idx) == 0:
        return []
    cand = geoms[idx]
    # touching only (shared edge / vertex) is not an overlap
    keep = ~shapely.touches(candidate, cand)
    idx, cand = idx[keep], cand[keep]
    if len(idx) == 0:
        return []
    inter = shapely.intersection(candidate, cand)
    areas = area_m2_many(inter)
    big = areas > tolerance_m2
    if big.any():
        big[big] = ~_slivers(inter[big], sliver_m)
    return [(ids[i], float(a)) for i, a in zip(idx[big], areas[big], strict=False)]


def check_no_overlaps(
    candidate,
    neighbours: Sequence[tuple[Any, Any]],
    field: str = "boundary",
    **kw: Any,
) -> list[Problem]:
    """:func:`find_overlaps` as a list of :class:`Problem`."""
    return [
        Problem(
            field,
            f"boundary overlaps {nid} by {a:,.1f} m²",
            {"neighbour": nid, "overlap_m2": round(a, 3)},
        )
        for nid, a in find_overlaps(candidate, neighbours, **kw)
    ]


def find_overlapping_pairs(
    items: Sequence[tuple[Any, Any]],
    *,
    tolerance_m2: float = OVERLAP_TOLERANCE_M2,
    sliver_m: float = SLIVER_WIDTH_M,
) -> list[tuple[Any, Any, float]]:
    """All ``(id_a, id_b, overlap_m2)`` pairs (a before b in ``items``) that overlap.

    One STRtree bulk query, a vectorised ``touches`` filter to drop neighbours
    that merely share an edge, then exact intersection areas for the rest.
    """
    if len(items) < 2:
        return []
    ids = [it[0] for it in items]
    geoms = np.asarray([it[1] for it in items], dtype=object)
    tree = STRtree(geoms)
    qi, ti = tree.query(geoms, predicate="intersects")
    m = qi < ti
    qi, ti = qi[m], ti[m]
    if len(qi) == 0:
        return []
    keep = ~shapely.touches(geoms[qi], geoms[ti])
    qi, ti = qi[keep], ti[keep]
    if len(qi) == 0:
        return []
    inter = shapely.intersection(geoms[qi], geoms[ti])
    areas = area_m2_many(inter)
    big = areas > tolerance_m2
    if big.any():
        big[big] = ~_slivers(inter[big], sliver_m)
    order = np.lexsort((ti[big], qi[big]))
    qa, ta, aa = qi[big][order], ti[big][order], areas[big][order]
    return [(ids[a], ids[b], float(x)) for a, b, x in zip(qa, ta, aa, strict=False)]


def _union(child_geoms: Iterable[Any]):
    arr = [g for g in child_geoms if g is not None and not g.is_empty]
    if not arr:
        return Polygon()
    return shapely.union_all(np.asarray(arr, dtype=object))


def coverage(parent_geom, child_geoms: Iterable[Any]) -> Coverage:
    """Fraction of ``parent_geom`` covered by the union of ``child_geoms``.

    Returns ``Coverage(fraction, uncovered_m2)``; fraction is 0..1.
    """
    parent_area = parent_geom.area
    if parent_area == 0.0:
        return Coverage(1.0, 0.0)
    uncovered = shapely.difference(parent_geom, _union(child_geoms))
    frac = 1.0 - uncovered.area / parent_area  # same projection → ratio of degree areas
    return Coverage(float(min(1.0, max(0.0, frac))), area_m2(uncovered))


def gaps(
    parent_geom,
    child_geoms: Iterable[Any],
    *,
    min_area_m2: float = OVERLAP_TOLERANCE_M2,
    sliver_m: float = SLIVER_WIDTH_M,
) -> list[Any]:
    """The uncovered pieces of ``parent_geom`` (polygons) worth reporting,
    largest first; slivers and pieces ≤ ``min_area_m2`` are dropped."""
    uncovered = shapely.difference(parent_geom, _union(child_geoms))
    if uncovered.is_empty:
        return []
    parts = np.asarray(shapely.get_parts(uncovered), dtype=object)
    parts = parts[shapely.get_type_id(parts) == 3]  # polygons only
    if len(parts) == 0:
        return []
    areas = area_m2_many(parts)
    keep = areas > min_area_m2
    if keep.any():
        keep[keep] = ~_slivers(parts[keep], sliver_m)
    order = np.argsort(-areas[keep], kind="stable")
    return list(parts[keep][order])


# --------------------------------------------------------------------------
# point location
# --------------------------------------------------------------------------


_FIELDS = ("x1", "x2", "y1", "y2", "dx", "dy", "tol")


class LocateIndex:
    """In-memory index answering "which polygons contain these points?".

    Built once from ``(key, geom)`` pairs; keys are ints chosen by the caller
    (typically a position in the caller's own list of records).  Points on a
    boundary (within :attr:`BOUNDARY_EPS` degrees, ~1 µm) match every polygon
    sharing that boundary; the caller breaks ties.

    Implementation: one STRtree bulk bbox query for candidate (point, polygon)
    pairs, then a vectorised numpy crossing-number test over the candidate
    polygons' edges (polygons with many edges go through shapely's prepared
    ``intersects_xy`` instead).  Per candidate this is several times cheaper
    than ``STRtree.query(predicate="intersects")``, which matters because a
    multi-network index has ~6-9 candidates per point.
    """

    #: distance (degrees) under which a point counts as on an edge
    BOUNDARY_EPS = 1e-11
    #: edge-count buckets tested with numpy; bigger polygons go to shapely
    BUCKETS = (6, 10, 16, 32, 64)
    #: upper bound on the number of cells of the acceleration grid
    MAX_CELLS = 4_000_000
    #: cell side = median polygon bbox side / CELL_DIVISOR
    CELL_DIVISOR = 6.0

    def __init__(self, items: Iterable[tuple[int, Any]]):
        keys, geoms = [], []
        for k, g in items:
            if g is None or g.is_empty:
                continue
            keys.append(int(k))
            geoms.append(g)
        n = len(keys)
        self._keys = np.asarray(keys, dtype=np.int64)
        self._geoms = np.asarray(geoms, dtype=object)
        # rank of each polygon's key, for a single-key sort of the hits
        order = np.argsort(self._keys, kind="stable")
        self._rank = np.empty(n, dtype=np.int64)
        self._rank[order] = np.arange(n)
        # flattened edges of every ring of every polygon, grouped by polygon
        if n:
            parts, part_idx = shapely.get_parts(self._geoms, return_index=True)
            rings, ring_idx = shapely.get_rings(parts, return_index=True)
            xy, coord_idx = shapely.get_coordinates(rings, return_index=True)
            same = coord_idx[:-1] == coord_idx[1:]
            e_poly = part_idx[ring_idx[coord_idx[:-1][same]]]
            a, b = xy[:-1][same], xy[1:][same]
            counts = np.bincount(e_poly, minlength=n)
        else:
            a = b = np.zeros((0, 2))
            counts = np.zeros(0, dtype=np.int64)
        # orient every edge upwards (y1 <= y2): the crossing rule ignores orientation
        flip = a[:, 1] > b[:, 1]
        a[flip], b[flip] = b[flip], a[flip].copy()
        self._nedges = counts.astype(np.int64)
        estart = np.concatenate([[0], np.cumsum(self._nedges)[:-1]]).astype(np.int64)
        # polygons are bucketed by edge count and padded to the bucket width,
        # so a batch test is a few dense (candidates × width) array operations
        self._cls = np.full(n, -1, dtype=np.int64)  # -1: test with shapely
        self._row = np.zeros(n, dtype=np.int64)
        self._buckets: list[tuple[int, np.ndarray]] = []
        lo = 0
        for ci, width in enumerate(self.BUCKETS):
            members = np.flatnonzero((self._nedges > lo) & (self._nedges <= width))
            lo = width
            self._cls[members] = ci
            self._row[members] = np.arange(len(members))
            m = len(members)
            arr = {k: np.zeros((m, width)) for k in _FIELDS}
            arr["y1"][:] = 1e300  # padding edges never straddle the ray
            arr["y2"][:] = -1e300
            arr["tol"][:] = -1.0  # ... and are never "near"
            if m:
                ne = self._nedges[members]
                r = np.repeat(np.arange(m), ne)
                c = np.arange(int(ne.sum())) - np.repeat(np.cumsum(ne) - ne, ne)
                src = np.repeat(estart[members], ne) + c
                ax, ay, bx, by = a[src, 0], a[src, 1], b[src, 0], b[src, 1]
                arr["x1"][r, c], arr["y1"][r, c], arr["x2"][r, c], arr["y2"][r, c] = ax, ay, bx, by
                arr["dx"][r, c], arr["dy"][r, c] = bx - ax, by - ay
                arr["tol"][r, c] = self.BOUNDARY_EPS * (np.abs(bx - ax) + np.abs(by - ay))
            # one (polygons, field, width) block: a single gather per batch
            self._buckets.append((ci, np.ascontiguousarray(np.stack([arr[k] for k in _FIELDS], axis=1))))
        shapely.prepare(self._geoms)
        self._build_cells()

    def _build_cells(self) -> None:
        """A uniform grid of cells over the polygons' extent.  For every cell,
        the polygons touching it, each flagged "full" when the polygon's
        interior contains the whole (slightly enlarged) cell: points there need
        no test at all.  Cell side ≈ half the median polygon bbox side."""
        n = len(self._keys)
        if n == 0:
            self._cs = 1.0
            self._x0 = self._y0 = 0.0
            self._nx = self._ny = 1
            self._ptr = np.zeros(2, dtype=np.int64)
            self._cpoly = np.zeros(0, dtype=np.int64)
            self._cfull = np.zeros(0, dtype=bool)
            return
        b = shapely.bounds(self._geoms)
        x0, y0 = b[:, 0].min(), b[:, 1].min()
        x1, y1 = b[:, 2].max(), b[:, 3].max()
        side = np.sqrt(np.maximum((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1e-18))
        cs = float(np.median(side)) / self.CELL_DIVISOR
        ext = max(x1 - x0, 1e-9) * max(y1 - y0, 1e-9)
        cs = max(cs, math.sqrt(ext / self.MAX_CELLS), 1e-7)
        nx = int((x1 - x0) // cs) + 1
        ny = int((y1 - y0) // cs) + 1
        ix0 = np.clip(((b[:, 0] - x0) // cs).astype(np.int64), 0, nx - 1)
        ix1 = np.clip(((b[:, 2] - x0) // cs).astype(np.int64), 0, nx - 1)
        iy0 = np.clip(((b[:, 1] - y0) // cs).astype(np.int64), 0, ny - 1)
        iy1 = np.clip(((b[:, 3] - y0) // cs).astype(np.int64), 0, ny - 1)
        wx, wy = ix1 - ix0 + 1, iy1 - iy0 + 1
        cnt = wx * wy
        g = np.repeat(np.arange(n), cnt)
        k = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        cx = ix0[g] + k % wx[g]
        cy = iy0[g] + k // wx[g]
        pad = 1e-9
        boxes = shapely.box(
            x0 + cx * cs - pad, y0 + cy * cs - pad, x0 + (cx + 1) * cs + pad, y0 + (cy + 1) * cs + pad
        )
        geoms = self._geoms[g]
        full = shapely.contains_properly(geoms, boxes)
        keep = full.copy()
        keep[~full] = shapely.intersects(geoms[~full], boxes[~full])
        cid = (cy * nx + cx)[keep]
        order = np.argsort(cid, kind="stable")
        self._cpoly = g[keep][order]
        self._cfull = full[keep][order]
        self._ptr = np.searchsorted(cid[order], np.arange(nx * ny + 1)).astype(np.int64)
        self._cs, self._x0, self._y0, self._nx, self._ny = cs, float(x0), float(y0), nx, ny

    def _candidates(self, x: np.ndarray, y: np.ndarray):
        """(point index, polygon index, full) candidate triples from the cells."""
        with np.errstate(invalid="ignore"):
            fx = np.floor((x - self._x0) / self._cs)
            fy = np.floor((y - self._y0) / self._cs)
            ok = (fx >= 0) & (fx < self._nx) & (fy >= 0) & (fy < self._ny)
        pidx = np.flatnonzero(ok)
        cid = fy[pidx].astype(np.int64) * self._nx + fx[pidx].astype(np.int64)
        start = self._ptr[cid]
        cnt = self._ptr[cid + 1] - start
        total = int(cnt.sum())
        pi = np.repeat(pidx, cnt)
        j = np.repeat(start - (np.cumsum(cnt) - cnt), cnt) + np.arange(total)
        return pi, self._cpoly[j], self._cfull[j]

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def keys(self) -> np.ndarray:
        return self._keys

    def _contains(self, gi: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
        """Point-in-polygon (boundary inclusive) for candidate pairs."""
        hit = np.zeros(len(gi), dtype=bool)
        cls = self._cls[gi]
        big = cls < 0
        if big.any():
            hit[big] = shapely.intersects_xy(self._geoms[gi[big]], px[big], py[big])
        eps = self.BOUNDARY_EPS
        for ci, arr in self._buckets:
            sel = np.flatnonzero(cls == ci)
            if len(sel) == 0:
                continue
            rows = self._row[gi[sel]]
            qx = px[sel][:, None]
            qy = py[sel][:, None]
            blk = arr.take(rows, axis=0)
            x1, x2, y1, y2, dx, dy, tol = (blk[:, i, :] for i in range(7))
            cross = dx * (qy - y1) - dy * (qx - x1)
            # crossing number, ray towards +x, half-open in y so a vertex counts once
            crossing = (y1 <= qy) & (qy < y2) & (cross > 0)
            res = (np.count_nonzero(crossing, axis=1) & 1).astype(bool)
            # points (nearly) on an edge are inside; few, so checked one by one
            ni, nj = np.nonzero(np.abs(cross) <= tol)
            if len(ni):
                xa, xb = x1[ni, nj], x2[ni, nj]
                nx, ny = qx[ni, 0], qy[ni, 0]
                on = (
                    (nx >= np.minimum(xa, xb) - eps)
                    & (nx <= np.maximum(xa, xb) + eps)
                    & (ny >= y1[ni, nj] - eps)
                    & (ny <= y2[ni, nj] + eps)
                )
                res[ni[on]] = True
            hit[sel] = res
        return hit

    def locate_many(self, lons, lats) -> tuple[np.ndarray, np.ndarray]:
        """Locate a batch of points.

        Returns ``(point_index, key)`` int64 arrays of equal length, one row
        per (point, polygon) hit, sorted by point index then key.  Points with
        NaN coordinates or outside every polygon simply have no rows.
        """
        x = np.asarray(lons, dtype=float).ravel()
        y = np.asarray(lats, dtype=float).ravel()
        if x.shape != y.shape:
            raise ValueError("lons and lats must have the same length")
        empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        if len(x) == 0 or len(self._keys) == 0:
            return empty
        pi, gi, hit = self._candidates(x, y)
        if len(pi) == 0:
            return empty
        test = np.flatnonzero(~hit)
        if len(test):
            hit[test] = self._contains(gi[test], x[pi[test]], y[pi[test]])
        pi, gi = pi[hit], gi[hit]
        order = np.argsort(pi * len(self._keys) + self._rank[gi], kind="stable")
        return pi[order].astype(np.int64), self._keys[gi[order]]

    def locate_lists(self, lons, lats) -> list[list[int]]:
        """Like :meth:`locate_many` but one sorted key list per point."""
        n = len(np.asarray(lons, dtype=float).ravel())
        pi, k = self.locate_many(lons, lats)
        out: list[list[int]] = [[] for _ in range(n)]
        bounds = np.searchsorted(pi, np.arange(n + 1))
        kl = k.tolist()
        for i in np.nonzero(np.diff(bounds))[0].tolist():
            out[i] = kl[bounds[i] : bounds[i + 1]]
        return out

    def locate_one(self, lon: float, lat: float) -> list[int]:
        """Sorted keys of every polygon containing (or touching) the point."""
        return self.locate_many([lon], [lat])[1].tolist()
