"""A deterministic demo county shaped (loosely) like Dali (大理).

``generate_county(seed, scale)`` builds plain data: the administrative tree
(county → streets/towns → communities/villages), three grid networks
(综治 security, 党建 party, 城管 urban) with nested level-1/2/3 and dedicated
grids, buildings with units and households, and staff.  Everything is
JSON-serialisable (boundaries as GeoJSON dicts, coordinates rounded to 1e-7°)
and identical for the same ``seed`` and ``scale``.

At ``scale=1.0`` the totals follow the Dali figures from the seeds:
≈2,400 level-1, ≈7,300 level-2, ≈1,300 level-3 and ≈1,400 dedicated grids
across the three networks.  ``scale`` multiplies every count (with small
minimums so that tiny scales still give a sensible tree).

Pure: imports only shapely, numpy and the standard library.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely import affinity
from shapely.geometry import MultiPolygon, Polygon, box

from gridgeo import (
    PRECISION,
    Problem,
    check_inside_parent,
    coverage,
    find_overlapping_pairs,
    parse_boundary,
    parse_point_geojson,
    to_geojson,
)

__all__ = [
    "County",
    "generate_county",
    "validate_county",
    "NETWORKS",
    "TARGETS",
]

#: network code → (name, share of the grid totals)
NETWORKS: dict[str, tuple[str, float]] = {
    "security": ("综治网格", 0.50),
    "party": ("党建网格", 0.30),
    "urban": ("城管网格", 0.20),
}

#: totals across all networks at scale 1.0 (Dali figures, rounded)
TARGETS = {"level1": 2400, "level2": 7300, "level3": 1300, "dedicated": 1400}
TOWNS = 11
COMMUNITIES = 110

_BBOX = (100.05, 25.45, 100.45, 25.95)
_CENTRE = (100.25, 25.70)
_URBAN_CORE = (100.23, 25.60)  # denser grids around here (Xiaguan-like)
_ND = 7  # decimals kept in output coordinates (== PRECISION)

_SYL = list("龙凤银喜海双金玉苍洱太上湾桥关山溪林城南北东西和平兴安福宁华阳云峰石马白鹤古清花荷庆新永丰源泉莲茶")
_SURNAMES = list(
    "王李张刘陈杨赵黄周吴徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁沈姚卢段尹"
)
_GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰红梅云春海燕建国志宏文丽萍斌鹏飞荣琴")
_INSTITUTIONS = {
    "school": (["小学", "中学", "幼儿园", "职业中学"], (90, 220)),
    "hospital": (["卫生院", "人民医院", "中医院", "社区卫生服务站"], (60, 180)),
    "market": (["农贸市场", "综合市场", "商贸城"], (50, 150)),
    "enterprise": (["食品有限公司", "建材厂", "物流园", "茶叶合作社", "乳业有限公司"], (70, 260)),
    "scenic": (["古镇景区", "湿地公园", "风景区", "民俗村"], (150, 450)),
}
_INST_P = np.array([0.35, 0.15, 0.2, 0.2, 0.1])

_M_LAT = 110_540.0
_M_LON = 111_320.0 * math.cos(math.radians(_CENTRE[1]))


# --------------------------------------------------------------------------
# the result
# --------------------------------------------------------------------------


@dataclass
class County:
    seed: int
    scale: float
    divisions: list[dict[str, Any]] = field(default_factory=list)
    networks: list[dict[str, Any]] = field(default_factory=list)
    grids: list[dict[str, Any]] = field(default_factory=list)
    buildings: list[dict[str, Any]] = field(default_factory=list)
    staff: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "scale": self.scale,
            "divisions": self.divisions,
            "networks": self.networks,
            "grids": self.grids,
            "buildings": self.buildings,
            "staff": self.staff,
        }

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True, **kw)

    def digest(self) -> str:
        """SHA-256 of the canonical JSON: equal digests ⇔ identical counties."""
        return hashlib.sha256(self.to_json(separators=(",", ":")).encode()).hexdigest()

    def to_feature_collections(self) -> dict[str, dict[str, Any]]:
        """One GeoJSON FeatureCollection per network code; feature properties
        are the grid fields minus ``boundary``."""
        out: dict[str, dict[str, Any]] = {
            n["code"]: {"type": "FeatureCollection", "name": n["code"], "features": []}
            for n in self.networks
        }
        for g in self.grids:
            props = {k: v for k, v in g.items() if k != "boundary"}
            out[g["network"]]["features"].append(
                {"type": "Feature", "id": g["code"], "properties": props, "geometry": g["boundary"]}
            )
        return out

    def counts(self) -> dict[str, Any]:
        c: dict[str, Any] = defaultdict(int)
        for d in self.divisions:
            c[d["kind"]] += 1
        for g in self.grids:
            key = "dedicated" if g["kind"] == "dedicated" else f"level{g['level']}"
            c[key] += 1
            c[f"{g['network']}.{key}"] += 1
        c["buildings"] = len(self.buildings)
        c["units"] = sum(len(b["units"]) for b in self.buildings)
        c["households"] = sum(len(u["households"]) for b in self.buildings for u in b["units"])
        for s in self.staff:
            c[s["role"]] += 1
        c["people"] = len({s["key"] for s in self.staff})
        return dict(c)


# --------------------------------------------------------------------------
# geometry helpers
# --------------------------------------------------------------------------


def _snap(g):
    return shapely.set_precision(g, PRECISION)


def _polygonal(g):
    """Keep only the polygonal part of an overlay result."""
    if g is None or g.is_empty:
        return None
    if isinstance(g, (Polygon, MultiPolygon)):
        return g
    parts = [p for p in shapely.get_parts(g) if isinstance(p, (Polygon, MultiPolygon))]
    if not parts:
        return None
    return shapely.union_all(parts, grid_size=PRECISION)


def _sample_in(rng: np.random.Generator, geom, n: int) -> np.ndarray:
    """``n`` uniform random points (lon, lat) inside ``geom``."""
    shapely.prepare(geom)
    minx, miny, maxx, maxy = geom.bounds
    fill = max(geom.area / max((maxx - minx) * (maxy - miny), 1e-18), 0.02)
    got: list[np.ndarray] = []
    have = 0
    for _ in range(200):
        m = int((n - have) / fill * 1.3) + 8
        xy = np.column_stack([rng.uniform(minx, maxx, m), rng.uniform(miny, maxy, m)])
        inside = shapely.contains_xy(geom, xy[:, 0], xy[:, 1])
        got.append(xy[inside])
        have += int(inside.sum())
        if have >= n:
            break
    pts = np.concatenate(got)[:n]
    if len(pts) < n:  # pathological sliver: fall back to points on surface
        extra = np.array([shapely.get_coordinates(geom.representative_point())[0]] * (n - len(pts)))
        pts = np.concatenate([pts, extra]) if len(pts) else extra
    return pts


def _voronoi_clip(xy: np.ndarray, parent) -> list:
    vor = shapely.voronoi_polygons(shapely.multipoints(xy), extend_to=parent)
    cells = np.asarray(shapely.get_parts(vor), dtype=object)
    clipped = shapely.intersection(cells, parent, grid_size=PRECISION)
    out = []
    for c in clipped:
        c = _polygonal(c)
        if c is not None and c.area > 0:
            out.append(c)
    return out


def _merge_fragments(cells: list) -> list:
    """Give detached small parts of a multi-part cell to the sibling they
    share the longest edge with, so that most grids are single polygons.
    The union of all cells (the tiling of the parent) is unchanged."""
    cells = list(cells)
    for i in range(len(cells)):
        c = cells[i]
        if not isinstance(c, MultiPolygon):
            continue
        parts = sorted(c.geoms, key=lambda p: -p.area)
        keep = [parts[0]]
        for p in parts[1:]:
            best, best_len = -1, 0.0
            pb = p.boundary
            for j, s in enumerate(cells):
                if j == i or not s.intersects(p):
                    continue
                ln = shapely.intersection(pb, s).length
                if ln > best_len:
                    best, best_len = j, ln
            if best >= 0 and best_len > 10 * PRECISION:
                merged = _polygonal(shapely.union(cells[best], p, grid_size=PRECISION))
                if merged is not None:
                    cells[best] = merged
                    continue
            keep.append(p)
        cells[i] = keep[0] if len(keep) == 1 else _polygonal(shapely.union_all(keep, grid_size=PRECISION))
    return cells


def _reading_order(cells: list) -> list:
    """North→south, then west→east by representative point (for numbering)."""
    rp = [shapely.get_coordinates(c.representative_point())[0] for c in cells]
    order = sorted(range(len(cells)), key=lambda i: (-round(rp[i][1], 3), rp[i][0]))
    return [cells[i] for i in order]


def _split(rng: np.random.Generator, parent, k: int, lloyd: int = 1) -> list:
    """Cut ``parent`` into ≈k Voronoi cells that tile it exactly."""
    if k <= 1:
        return [parent]
    xy = _sample_in(rng, parent, k)
    for _ in range(lloyd):
        cells = _voronoi_clip(xy, parent)
        if len(cells) != k:
            break
        cen = shapely.centroid(np.asarray(cells, dtype=object))
        cx, cy = shapely.get_x(cen), shapely.get_y(cen)
        ok = shapely.contains_xy(parent, cx, cy)
        new = np.column_stack([cx, cy])
        for j in np.nonzero(~ok)[0]:
            new[j] = shapely.get_coordinates(cells[j].representative_point())[0]
        xy = new
    cells = _voronoi_clip(xy, parent)
    if not cells:
        return [parent]
    return _reading_order(_merge_fragments(cells))


def _county_shape(rng: np.random.Generator):
    n = 180
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(2, 7):
        r += rng.uniform(0.02, 0.07) / k * 2 * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    rx, ry = 0.19, 0.235
    x = _CENTRE[0] + rx * r * np.cos(t)
    y = _CENTRE[1] + ry * r * np.sin(t)
    x = np.clip(x, _BBOX[0], _BBOX[2])
    y = np.clip(y, _BBOX[1], _BBOX[3])
    poly = shapely.make_valid(Polygon(np.column_stack([x, y])))
    poly = _polygonal(poly)
    if isinstance(poly, MultiPolygon):
        poly = max(poly.geoms, key=lambda p: p.area)
    return _snap(poly.intersection(box(*_BBOX)))


def _density(xy: np.ndarray) -> np.ndarray:
    d = np.hypot((xy[:, 0] - _URBAN_CORE[0]) * _M_LON, (xy[:, 1] - _URBAN_CORE[1]) * _M_LAT)
    return 1.0 + 5.0 * np.exp(-((d / 9_000.0) ** 2))


def _allocate(rng: np.random.Generator, total: int, weights: np.ndarray, minimum: int) -> np.ndarray:
    """Integer counts ≥ minimum per bin summing to ``total`` (if possible)."""
    n = len(weights)
    if n == 0:
        return np.zeros(0, dtype=int)
    minimum = max(1, min(minimum, total // n)) if total >= n else 1
    base = np.full(n, minimum, dtype=int)
    rem = total - base.sum()
    if rem > 0:
        w = np.asarray(weights, dtype=float)
        p = w / w.sum()
        exact = p * rem
        extra = np.floor(exact).astype(int)
        left = rem - extra.sum()
        if left > 0:
            frac = exact - extra + rng.uniform(0, 1e-6, n)
            extra[np.argsort(-frac, kind="stable")[:left]] += 1
        base += extra
    return base


# --------------------------------------------------------------------------
# names and people
# --------------------------------------------------------------------------


class _Names:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.used: set[str] = set()

    def place(self, suffix: str) -> str:
        for _ in range(1000):
            a, b = self.rng.choice(len(_SYL), 2, replace=False)
            stem = _SYL[a] + _SYL[b]
            if stem not in self.used:
                self.used.add(stem)
                return stem + suffix
        stem = "".join(_SYL[i] for i in self.rng.choice(len(_SYL), 3, replace=False))
        self.used.add(stem)
        return stem + suffix


class _People:
    """Deterministic people: key p000001…, Chinese name, unique 13x phone."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.n = 0
        # phone = 13 + (a*i + b) mod 1e9 with a coprime to 10 → unique per i
        self.a = int(rng.integers(10**8, 10**9)) | 1
        if self.a % 5 == 0:
            self.a += 2
        self.b = int(rng.integers(0, 10**9))

    def new(self) -> dict[str, str]:
        self.n += 1
        r = self.rng
        name = _SURNAMES[int(r.integers(len(_SURNAMES)))] + "".join(
            _GIVEN[int(i)] for i in r.integers(len(_GIVEN), size=int(r.integers(1, 3)))
        )
        phone = "13" + f"{(self.a * self.n + self.b) % 10**9:09d}"
        return {"key": f"p{self.n:06d}", "name": name, "phone": phone}


# --------------------------------------------------------------------------
# generation
# --------------------------------------------------------------------------


def _n(x: float) -> int:
    return int(round(x))


def generate_county(seed: int = 7, scale: float = 1.0) -> County:
    """Generate the demo county (see module docstring)."""
    if not scale > 0:
        raise ValueError("scale must be positive")
    root = np.random.default_rng([seed, 0])
    names = _Names(np.random.default_rng([seed, 1]))
    county = County(seed=seed, scale=scale)

    # ---- administrative tree -------------------------------------------
    county_geom = _county_shape(root)
    n_towns = max(2, _n(TOWNS * scale))
    n_comms = max(2 * n_towns, _n(COMMUNITIES * scale))
    divisions: list[tuple[dict, Any]] = [
        ({"code": "DL", "name": "大理市", "kind": "county", "parent_code": None}, county_geom)
    ]
    towns = _split(root, county_geom, n_towns, lloyd=2)
    town_w = np.array([t.area for t in towns])
    per_town = _allocate(root, n_comms, town_w, 2)
    communities: list[tuple[dict, Any]] = []
    for ti, (tg, k) in enumerate(zip(towns, per_town, strict=False), start=1):
        urban = ti <= max(1, len(towns) // 4)
        tcode = f"DL-{ti:02d}"
        divisions.append(
            (
                {
                    "code": tcode,
                    "name": names.place("街道" if urban else "镇"),
                    "kind": "street",
                    "parent_code": "DL",
                },
                tg,
            )
        )
        for ci, cg in enumerate(_split(root, tg, int(k), lloyd=2), start=1):
            rec = {
                "code": f"{tcode}-{ci:02d}",
                "name": names.place("社区" if urban or ci % 4 == 1 else "村"),
                "kind": "community",
                "parent_code": tcode,
            }
            communities.append((rec, cg))
            divisions.append((rec, cg))
    county.divisions = [dict(rec, boundary=to_geojson(g, _ND)) for rec, g in divisions]
    comm_name = {rec["code"]: rec["name"] for rec, _ in communities}

    # ---- networks and grids --------------------------------------------
    people = _People(np.random.default_rng([seed, 2]))
    staff: list[dict] = []
    grids: list[dict] = []
    comm_geoms = [g for _, g in communities]
    comm_rp = np.array([shapely.get_coordinates(g.representative_point())[0] for g in comm_geoms])
    comm_w = np.array([g.area for g in comm_geoms]) * _density(comm_rp)
    security_l1: list[tuple[dict, Any]] = []

    for ni, (net, (net_name, share)) in enumerate(NETWORKS.items()):
        county.networks.append({"code": net, "name": net_name})
        rng = np.random.default_rng([seed, 100 + ni])
        n1 = max(len(communities), _n(TARGETS["level1"] * share * scale))
        n2 = max(n1, _n(TARGETS["level2"] * share * scale))
        n3 = _n(TARGETS["level3"] * share * scale)
        nd = _n(TARGETS["dedicated"] * share * scale)

        def add(rec: dict, geom, net: str = net, rng: np.random.Generator = rng) -> None:
            grids.append(dict(rec, boundary=to_geojson(geom, _ND)))
            head = people.new()
            staff.append(dict(head, role="grid_head", network=net, grid_code=rec["code"], building_code=None))
            for _ in range(int(rng.integers(1, 4))):
                staff.append(
                    dict(people.new(), role="grid_worker", network=net, grid_code=rec["code"], building_code=None)
                )

        # level 1 inside each community
        l1: list[tuple[dict, Any]] = []
        for (crec, cg), k in zip(communities, _allocate(rng, n1, comm_w, 1), strict=False):
            for i, g in enumerate(_split(rng, cg, int(k), lloyd=1), start=1):
                rec = {
                    "network": net,
                    "code": f"{net}-{crec['code']}-{i:03d}",
                    "name": f"{crec['name']}{i}号网格",
                    "level": 1,
                    "kind": "regular",
                    "parent_code": None,
                    "division_code": crec["code"],
                }
                add(rec, g)
                l1.append((rec, g))
        if net == "security":
            security_l1 = l1

        # level 2 inside each level-1 grid
        l2: list[tuple[dict, Any]] = []
        l1_rp = np.array([shapely.get_coordinates(g.representative_point())[0] for _, g in l1])
        w1 = np.array([g.area for _, g in l1]) * _density(l1_rp)
        for (prec, pg), k in zip(l1, _allocate(rng, n2, w1, 2), strict=False):
            for j, g in enumerate(_split(rng, pg, int(k), lloyd=1), start=1):
                rec = {
                    "network": net,
                    "code": f"{prec['code']}-{j}",
                    "name": f"{prec['name'][:-3]}-{j}号网格",
                    "level": 2,
                    "kind": "regular",
                    "parent_code": prec["code"],
                    "division_code": prec["division_code"],
                }
                add(rec, g)
                l2.append((rec, g))

        # level 3 inside a fraction of the level-2 grids
        if n3 > 0 and l2:
            m = min(len(l2), max(1, _n(n3 / 3.0)))
            chosen = np.sort(rng.choice(len(l2), m, replace=False))
            ks = _allocate(rng, n3, np.ones(m), 2)
            for idx, k in zip(chosen, ks, strict=False):
                prec, pg = l2[int(idx)]
                for q, g in enumerate(_split(rng, pg, int(k), lloyd=1), start=1):
                    rec = {
                        "network": net,
                        "code": f"{prec['code']}-{q}",
                        "name": f"{prec['name'][:-3]}-{q}号微网格",
                        "level": 3,
                        "kind": "regular",
                        "parent_code": prec["code"],
                        "division_code": prec["division_code"],
                    }
                    add(rec, g)

        # dedicated grids: small rectangles inside level-2 grids
        placed: dict[int, list] = defaultdict(list)
        n_in: dict[int, int] = defaultdict(int)
        inst_names = _Names(np.random.default_rng([seed, 200 + ni]))
        kinds = list(_INSTITUTIONS)
        l2_area = np.array([g.area for _, g in l2])
        p_l2 = l2_area / l2_area.sum() if len(l2) else None
        made = 0
        attempts = 0
        while made < nd and attempts < nd * 20 and l2:
            attempts += 1
            li = int(rng.choice(len(l2), p=p_l2))
            prec, pg = l2[li]
            kind = kinds[int(rng.choice(len(kinds), p=_INST_P))]
            suffixes, (lo, hi) = _INSTITUTIONS[kind]
            rect = _place_rect(rng, pg, placed[li], lo, hi)
            if rect is None:
                continue
            placed[li].append(rect)
            n_in[li] += 1
            made += 1
            inst = inst_names.place(suffixes[int(rng.integers(len(suffixes)))])
            rec = {
                "network": net,
                "code": f"{prec['code']}-D{n_in[li]}",
                "name": f"{inst}专属网格",
                "level": 3,
                "kind": "dedicated",
                "parent_code": prec["code"],
                "division_code": prec["division_code"],
                "institution": inst,
                "institution_kind": kind,
            }
            add(rec, rect)

    county.grids = grids

    # ---- buildings, units, households, building managers ---------------
    brng = np.random.default_rng([seed, 300])
    per_comm: dict[str, int] = defaultdict(int)
    for grec, gg in security_l1:
        nb = int(brng.integers(5, 11))
        pts = _sample_in(brng, gg, nb)
        for x, y in pts:
            dc = grec["division_code"]
            per_comm[dc] += 1
            no = per_comm[dc]
            b: dict[str, Any] = {
                "code": f"{dc}-B{no:03d}",
                "name": f"{comm_name[dc]}{no}栋",
                "division_code": dc,
                "grid_code": grec["code"],
                "location": {"type": "Point", "coordinates": [round(float(x), _ND), round(float(y), _ND)]},
                "outline": None,
            }
            if brng.uniform() < 0.3:
                side = brng.uniform(15, 40)
                sq = _rect(x, y, side, side * brng.uniform(0.5, 1.0), brng.uniform(0, 90))
                if gg.covers(sq):
                    b["outline"] = to_geojson(sq, _ND)
            units = []
            for u in range(1, int(brng.integers(1, 5)) + 1):
                hh = int(brng.integers(2, 13))
                units.append(
                    {
                        "code": str(u),
                        "name": f"{u}单元",
                        "households": [
                            {"code": f"{u}-{h // 2 + 1}{h % 2 + 1:02d}", "floor": h // 2 + 1} for h in range(hh)
                        ],
                    }
                )
            b["units"] = units
            county.buildings.append(b)
            staff.append(
                dict(people.new(), role="building_manager", network=None, grid_code=grec["code"], building_code=b["code"])
            )
    county.staff = staff
    return county


def _rect(x: float, y: float, w_m: float, h_m: float, angle: float):
    w, h = w_m / _M_LON / 2, h_m / _M_LAT / 2
    r = box(x - w, y - h, x + w, y + h)
    return _snap(affinity.rotate(r, angle, origin=(x, y)))


def _place_rect(rng: np.random.Generator, parent, others: list, lo: float, hi: float):
    shapely.prepare(parent)
    size = rng.uniform(lo, hi)
    for attempt in range(24):
        if attempt and attempt % 6 == 0:
            size *= 0.6
        x, y = _sample_in(rng, parent, 1)[0]
        r = _rect(x, y, size, size * rng.uniform(0.5, 1.0), rng.uniform(0, 90))
        if r.is_empty or not parent.contains(r):
            continue
        if any(r.intersects(o) for o in others):
            continue
        return r
    return None


# --------------------------------------------------------------------------
# validation of a generated (or imported) county
# --------------------------------------------------------------------------


def validate_county(county: County, *, min_coverage: float = 0.999999) -> list[Problem]:
    """Re-parse every boundary and check the invariants the registry enforces:
    valid polygons, children inside parents, no overlaps within a network per
    (level, kind), each community tiled by its level-1 grids, each
    subdivided grid/division tiled by its regular children, buildings inside
    their grid."""
    problems: list[Problem] = []

    def parse(obj, what):
        try:
            return parse_boundary(obj, what)
        except Exception as e:  # GeometryError
            problems.append(Problem(what, str(e)))
            return None

    div = {d["code"]: parse(d["boundary"], f"division {d['code']}") for d in county.divisions}
    kids: dict[tuple[str | None, str], list] = defaultdict(list)  # (network, parent) → regular children
    for d in county.divisions:
        if d["parent_code"] is not None and div[d["code"]] is not None:
            kids[(None, d["parent_code"])].append(div[d["code"]])
            par = div.get(d["parent_code"])
            if par is not None:
                problems += check_inside_parent(div[d["code"]], par, f"division {d['code']}")
    grid = {}
    for g in county.grids:
        key = (g["network"], g["code"])
        if key in grid:
            problems.append(Problem(f"grid {g['code']}", "duplicate code in network"))
        grid[key] = parse(g["boundary"], f"grid {g['code']}")
    groups: dict[tuple, list] = defaultdict(list)
    for g in county.grids:
        geom = grid[(g["network"], g["code"])]
        if geom is None:
            continue
        if g["parent_code"] is None:
            par = div.get(g["division_code"])
            pkey = (g["network"], "div:" + g["division_code"])
        else:
            par = grid.get((g["network"], g["parent_code"]))
            pkey = (g["network"], g["parent_code"])
        if par is None:
            problems.append(Problem(f"grid {g['code']}", "parent not found"))
        else:
            problems += check_inside_parent(geom, par, f"grid {g['code']}")
        if g["kind"] == "regular":
            kids[pkey].append(geom)
        groups[(g["network"], g["level"], g["kind"])].append((g["code"], geom))
    for (net, level, kind), items in groups.items():
        for a, b, area in find_overlapping_pairs(items):
            problems.append(
                Problem(f"grid {a}", f"overlaps {b} by {area:.1f} m² ({net} level {level} {kind})", {"overlap_m2": area})
            )
    for (net, pcode), children in kids.items():
        if pcode.startswith("div:"):
            parent = div.get(pcode[4:])
        elif net is None:
            parent = div.get(pcode)
        else:
            parent = grid.get((net, pcode))
        if parent is None:
            continue
        cov = coverage(parent, children)
        if cov.fraction < min_coverage:
            problems.append(
                Problem(
                    f"{net or 'division'} {pcode}",
                    f"children cover {cov.fraction:.6f} of the parent ({cov.uncovered_m2:.1f} m² uncovered)",
                    {"fraction": cov.fraction, "uncovered_m2": cov.uncovered_m2},
                )
            )
    for b in county.buildings:
        pt = parse_point_geojson(b["location"], f"building {b['code']}")
        g = grid.get(("security", b["grid_code"]))
        if g is not None and not g.covers(pt):
            problems.append(Problem(f"building {b['code']}", "location outside its grid"))
    return problems
