"""Locating points in every network at once ("多网合一").

A :class:`RegistryIndex` is an immutable, in-memory snapshot of the registry
at one revision (or one date): every grid version valid then, the divisions,
and the building outlines, each in a :class:`geometry.LocateIndex`.
:class:`Registry` keeps one per process and rebuilds it lazily when the
``registry_revision`` row moves, so every gunicorn worker stays current
without any messaging. :func:`locate_batch` is the vectorised hot path.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import shapely
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

import gridgeo as geometry

from .tables import Building, Division, Grid, GridVersion, Network, RegistryRevision

NEAR_BUILDING_M = 10.0  # a point this close to an outline (or to a point-only building) is "at" it
KINDS = {"regular": 0, "dedicated": 1}
DIVISION_SLOTS = {"county": 0, "street": 1, "community": 2}
# Children whose areas sum to the parent's within this fraction tile it (no gap piece).
TILED_TOLERANCE = 1e-7


@dataclass(frozen=True)
class GridRow:
    id: int
    network: str
    code: str
    name: str
    level: int
    kind: str
    institution: str | None
    parent_id: int | None
    division_id: int | None


class RegistryIndex:
    """One snapshot: grids, divisions and buildings with their geometries.

    Only *pieces* are tested point-in-polygon: every leaf (a grid or division
    without children) plus what of a parent its children leave uncovered
    (gaps). A hit then climbs the parent chain, which containment validation
    makes exact, so a point costs about one polygon test per network.
    Rows ``0..G-1`` are grids and ``G..`` divisions; each row has a *slot*
    (network, level, kind for grids; county, street, community for
    divisions), and a batch answer is a dense points × slots table filled
    by one scatter: no sorting, no per-point Python.
    """

    def __init__(self, grids: list[GridRow], grid_geoms, divisions: list[dict], division_geoms,
                 buildings: list[dict], outline_geoms, *, revision: int, at: datetime | None = None):
        self.revision = revision
        self.at = at
        self.grids = grids
        self.divisions = divisions
        self.geoms = np.asarray(grid_geoms, dtype=object)
        self.row_of = {g.id: i for i, g in enumerate(grids)}
        division_row = {d["id"]: len(grids) + i for i, d in enumerate(divisions)}
        slot_keys = sorted({(g.network, g.level, KINDS.get(g.kind, 0)) for g in grids})
        slot_no = {key: i for i, key in enumerate(slot_keys)}
        self.grid_slots = len(slot_keys)
        slot = [slot_no[(g.network, g.level, KINDS.get(g.kind, 0))] for g in grids]
        slot += [self.grid_slots + DIVISION_SLOTS.get(d["kind"], 0) for d in divisions]
        self.slot = np.asarray(slot, dtype=np.int64)
        self.slots = self.grid_slots + len(DIVISION_SLOTS)
        parent = [self.row_of.get(g.parent_id, -1) if g.parent_id else -1 for g in grids]
        parent += [division_row.get(d.get("parent_id"), -1) for d in divisions]
        regular = [g.kind == "regular" for g in grids] + [True] * len(divisions)
        geoms = np.asarray(list(self.geoms) + list(np.asarray(division_geoms, dtype=object)),
                           dtype=object)
        piece_rows, piece_geoms = _pieces(geoms, parent, regular)
        self.chain = _chains(parent)[piece_rows] if len(piece_rows) else np.zeros((0, 1), np.int64)
        self.piece_index = geometry.LocateIndex(enumerate(piece_geoms))
        # Pre-serialised JSON per row: the batch answer is assembled by joining strings.
        self.grid_json = [json.dumps(_grid_brief(g), ensure_ascii=False) for g in grids]
        self.division_json = [json.dumps({"id": d["id"], "code": d["code"], "name": d["name"]},
                                         ensure_ascii=False) for d in divisions]
        self.buildings = buildings
        near = [shapely.buffer(g, _deg(NEAR_BUILDING_M, g)) for g in outline_geoms]
        self.building_index = geometry.LocateIndex(enumerate(near))
        self.building_json = [json.dumps({"id": b["id"], "code": b["code"], "name": b["name"]},
                                         ensure_ascii=False) for b in buildings]

    def __len__(self) -> int:
        return len(self.grids)

    @classmethod
    def from_county(cls, county, revision: int = 0) -> RegistryIndex:
        """An index straight from a ``demo.generate_county`` result (no database);
        ids are positions. Handy for benchmarks."""
        div_ids = {d["code"]: i + 1 for i, d in enumerate(county.divisions)}
        ids = {(g["network"], g["code"]): i + 1 for i, g in enumerate(county.grids)}
        grids = [GridRow(i + 1, g["network"], g["code"], g["name"], g["level"], g["kind"],
                         g.get("institution"), ids.get((g["network"], g["parent_code"])),
                         div_ids.get(g["division_code"])) for i, g in enumerate(county.grids)]
        geoms = shapely.from_geojson([json.dumps(g["boundary"]) for g in county.grids])
        divisions = [{"id": div_ids[d["code"]], "code": d["code"], "name": d["name"], "kind": d["kind"],
                      "parent_id": div_ids.get(d["parent_code"])} for d in county.divisions]
        dgeoms = shapely.from_geojson([json.dumps(d["boundary"]) for d in county.divisions])
        buildings = [{"id": i + 1, "code": b["code"], "name": b["name"]} for i, b in enumerate(county.buildings)]
        shapes = [json.dumps(b.get("outline") or b["location"]) for b in county.buildings]
        bgeoms = shapely.from_geojson(shapes) if shapes else []
        return cls(grids, geoms, divisions, dgeoms, buildings, bgeoms, revision=revision)


def _pieces(geoms: np.ndarray, parent: list[int], regular: list[bool]):
    """Leaves, plus the uncovered remainder of every parent whose regular
    children do not tile it (checked by area first; exact difference only then)."""
    children: dict[int, list[int]] = defaultdict(list)
    for row, up in enumerate(parent):
        if up >= 0:
            children[up].append(row)
    areas = shapely.area(geoms) if len(geoms) else np.zeros(0)
    rows, pieces = [], []
    for row in range(len(geoms)):
        kids = children.get(row)
        if not kids:
            rows.append(row)
            pieces.append(geoms[row])
            continue
        tiled = sum(areas[k] for k in kids if regular[k])
        if abs(tiled - areas[row]) <= TILED_TOLERANCE * areas[row]:
            continue
        rest = shapely.difference(geoms[row], shapely.union_all(geoms[kids]))
        if not rest.is_empty and rest.area > 0:
            rows.append(row)
            pieces.append(rest)
    return np.asarray(rows, dtype=np.int64), pieces


def _chains(parent: list[int]) -> np.ndarray:
    """rows × depth: each row, then its ancestors, padded with -1."""
    chains = []
    for row in range(len(parent)):
        chain, up = [row], parent[row]
        while up >= 0 and len(chain) < 32:
            chain.append(up)
            up = parent[up]
        chains.append(chain)
    depth = max((len(c) for c in chains), default=1)
    out = np.full((len(chains), depth), -1, dtype=np.int64)
    for i, chain in enumerate(chains):
        out[i, :len(chain)] = chain
    return out


def _grid_brief(g: GridRow) -> dict[str, Any]:
    brief = {"id": g.id, "network": g.network, "level": g.level, "kind": g.kind,
             "code": g.code, "name": g.name}
    if g.institution:
        brief["institution"] = g.institution
    return brief


def _deg(metres: float, geom) -> float:
    return metres / (geometry.M_PER_DEG_LON_EQUATOR * max(np.cos(np.radians(geom.centroid.y)), 1e-6))


def _from_geojson(texts: list[str]):
    return shapely.from_geojson(texts) if texts else np.zeros(0, dtype=object)


def load_index(session: Session, at: datetime | None = None) -> RegistryIndex:
    """Build a snapshot from the database: current versions, or those valid at ``at``."""
    revision = read_revision(session)  # first: a concurrent write only makes us rebuild again
    query = (select(Grid.id, Network.code, Grid.code, Grid.name, Grid.level, Grid.kind,
                    Grid.institution, Grid.parent_id, Grid.division_id, GridVersion.boundary)
             .join(GridVersion, GridVersion.grid_id == Grid.id)
             .join(Network, Network.id == Grid.network_id))
    if at is None:
        query = query.where(GridVersion.valid_to.is_(None))
    else:
        query = query.where(GridVersion.valid_from <= at,
                            or_(GridVersion.valid_to.is_(None), GridVersion.valid_to > at))
    rows = session.execute(query.order_by(Grid.id)).all()
    grids = [GridRow(*r[:9]) for r in rows]
    geoms = _from_geojson([r[9] for r in rows])
    drows = session.execute(select(Division.id, Division.code, Division.name, Division.kind,
                                   Division.parent_id, Division.boundary).order_by(Division.id)).all()
    divisions = [{"id": r[0], "code": r[1], "name": r[2], "kind": r[3], "parent_id": r[4]}
                 for r in drows]
    # A building is its outline when drawn, else its point: both matched within NEAR_BUILDING_M.
    brows = session.execute(select(Building.id, Building.code, Building.name,
                                   func.coalesce(Building.outline, Building.location)).order_by(Building.id)).all()
    buildings = [{"id": r[0], "code": r[1], "name": r[2]} for r in brows]
    return RegistryIndex(grids, geoms, divisions, _from_geojson([r[5] for r in drows]),
                         buildings, _from_geojson([r[3] for r in brows]), revision=revision, at=at)


def read_revision(session: Session) -> int:
    return session.execute(select(RegistryRevision.revision).where(RegistryRevision.id == 1)
                           ).scalar_one_or_none() or 0


# --------------------------------------------------------------------------
# the hot path
# --------------------------------------------------------------------------


@dataclass
class LocateResult:
    """Columnar answer for n points: ``point``/``grid`` are parallel arrays
    (one row per point × grid, sorted by point then network/level/kind);
    ``community``/``street``/``building`` are per point (-1 for none)."""

    index: RegistryIndex
    lons: np.ndarray
    lats: np.ndarray
    point: np.ndarray
    grid: np.ndarray
    community: np.ndarray
    street: np.ndarray
    building: np.ndarray

    def __len__(self) -> int:
        return len(self.lons)

    def grids_of(self, i: int) -> list[GridRow]:
        lo, hi = np.searchsorted(self.point, [i, i + 1])
        return [self.index.grids[r] for r in self.grid[lo:hi].tolist()]

    def items_json(self) -> list[str]:
        """One JSON object per point, assembled from pre-serialised fragments."""
        idx = self.index
        bounds = np.searchsorted(self.point, np.arange(len(self) + 1)).tolist()
        rows = self.grid.tolist()
        gj, dj, bj = idx.grid_json, idx.division_json, idx.building_json
        community, street, building = self.community.tolist(), self.street.tolist(), self.building.tolist()
        lons, lats = self.lons.tolist(), self.lats.tolist()
        out = []
        for i in range(len(lons)):
            c, s, b = community[i], street[i], building[i]
            out.append(
                f'{{"lon":{lons[i]!r},"lat":{lats[i]!r},"grids":['
                + ",".join([gj[r] for r in rows[bounds[i]:bounds[i + 1]]])
                + '],"community":' + (dj[c] if c >= 0 else "null")
                + ',"street":' + (dj[s] if s >= 0 else "null")
                + ',"building":' + (bj[b] if b >= 0 else "null") + "}")
        return out

    def to_json(self, **extra: Any) -> str:
        head = "".join(f"{json.dumps(k)}:{json.dumps(v, default=str)}," for k, v in extra.items())
        return "{" + head + '"count":' + str(len(self)) + ',"results":[' + ",".join(self.items_json()) + "]}"


def locate_batch(index: RegistryIndex, lons, lats) -> LocateResult:
    """Every grid (each network, level and kind), community, street and building
    outline containing each point; one vectorised pass, no per-point Python."""
    x = np.asarray(lons, dtype=float).ravel()
    y = np.asarray(lats, dtype=float).ravel()
    n = len(x)
    point, piece = index.piece_index.locate_many(x, y)
    rows = index.chain[piece]  # hits × depth: the piece's row, then its ancestors
    points = np.broadcast_to(point[:, None], rows.shape)
    valid = rows >= 0
    rows, points = rows[valid], points[valid]
    # Dense points × slots table; a point on a shared edge touches two grids of
    # one slot and the later write wins, which is as good a tie-break as any.
    table = np.full((n, index.slots), -1, dtype=np.int64)
    table[points, index.slot[rows]] = rows
    grids = table[:, :index.grid_slots]
    hit_point, hit_slot = np.nonzero(grids >= 0)  # row-major: by point, then slot
    grid = grids[hit_point, hit_slot]
    divisions = table[:, index.grid_slots:] - len(index.grids)
    bpoint, brow = index.building_index.locate_many(x, y)
    building = np.full(n, -1, dtype=np.int64)
    building[bpoint] = brow
    divisions[divisions < 0] = -1
    return LocateResult(index, x, y, hit_point, grid, divisions[:, DIVISION_SLOTS["community"]],
                        divisions[:, DIVISION_SLOTS["street"]], building)


# --------------------------------------------------------------------------
# one registry per process
# --------------------------------------------------------------------------


class Registry:
    """Per-process cache of snapshots: the current one and a few historical ones."""

    def __init__(self, db, history_size: int = 8):
        self.db = db
        self.history_size = history_size
        self._current: RegistryIndex | None = None
        self._history: OrderedDict[tuple[datetime, int], RegistryIndex] = OrderedDict()
        self._lock = threading.Lock()
        self.builds = 0

    def current(self, session: Session | None = None) -> RegistryIndex:
        """The snapshot at the database's revision (one indexed SELECT per call)."""
        if session is None:
            with self.db.sessions() as own:
                return self.current(own)
        revision = read_revision(session)
        index = self._current
        if index is not None and index.revision == revision:
            return index
        with self._lock:
            index = self._current
            if index is None or index.revision != revision:
                index = load_index(session)
                self.builds += 1
                self._current = index
        return index

    def at(self, instant: datetime) -> RegistryIndex:
        with self.db.sessions() as session:
            key = (instant, read_revision(session))  # a later redraw closes versions: new key
            with self._lock:
                if key in self._history:
                    self._history.move_to_end(key)
                    return self._history[key]
            index = load_index(session, at=instant)
        with self._lock:
            self._history[key] = index
            while len(self._history) > self.history_size:
                self._history.popitem(last=False)
        return index
