"""Bulk import and export of grids as GeoJSON, and loading a whole demo county.

An import is all-or-nothing: every feature is checked first (properties,
geometry, containment, overlaps within level and kind), every rejected
feature is reported with its index, code and reasons, and only a clean
collection is written, in one transaction, with one event per grid changed.
A feature whose code already exists redraws that grid (new version, same id)
when its boundary, name or institution differ, and is left alone otherwise,
so export → import round-trips.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from sqlalchemy import and_, insert, select
from sqlalchemy.orm import Session

import gridgeo as geometry

from . import domain
from .events import (
    BUILDING_CREATED,
    DIVISION_CREATED,
    GRID_CREATED,
    GRID_REDRAWN,
    NETWORK_CREATED,
    STAFF_ASSIGNED,
)
from .tables import (
    Building,
    Division,
    Grid,
    GridVersion,
    Household,
    Network,
    StaffAssignment,
    Unit,
    bump_revision,
    grid_event,
    lock_registry,
    record_events,
    utcnow,
    version_row,
)

MAX_FEATURES = 50_000
PROPERTIES = {"code", "name", "level", "kind", "parent_code", "division_code", "institution",
              "institution_kind", "network"}
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
Progress = Callable[[float, str], None]


def _quiet(fraction: float, stage: str) -> None:
    pass


def progress_bar(fraction: float, stage: str, width: int = 30) -> None:
    """``\\r[#####     ]  42% stage`` on stderr."""
    done = int(round(fraction * width))
    sys.stderr.write(f"\r[{'#' * done}{' ' * (width - done)}] {fraction:4.0%} {stage:<24}")
    if fraction >= 1:
        sys.stderr.write("\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------
# checking one feature's properties
# --------------------------------------------------------------------------


def _read_feature(i: int, feature: Any, network: str) -> tuple[dict | None, list[str]]:
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        return None, ["not a GeoJSON Feature"]
    props = feature.get("properties")
    if not isinstance(props, dict):
        return None, ["properties must be an object"]
    reasons = [f"unknown property {key!r}" for key in sorted(set(props) - PROPERTIES)]
    code = props.get("code")
    if not isinstance(code, str) or not CODE.match(code):
        reasons.append("code must be letters, digits, . _ - (1-128)")
    name = props.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 200:
        reasons.append("name must be a string of 1-200 characters")
    level = props.get("level")
    if type(level) is not int or not 1 <= level <= 10:
        reasons.append("level must be an integer 1-10")
    kind = props.get("kind", "regular")
    if kind not in domain.GRID_KINDS:
        reasons.append(f"kind must be one of {', '.join(domain.GRID_KINDS)}")
    institution = props.get("institution")
    if institution is not None and (not isinstance(institution, str) or len(institution) > 200):
        reasons.append("institution must be a string")
    if kind == "dedicated" and not institution:
        reasons.append("a dedicated grid names its institution")
    for key in ("parent_code", "division_code"):
        if props.get(key) is not None and not isinstance(props[key], str):
            reasons.append(f"{key} must be a string or null")
    if props.get("network") not in (None, network):
        reasons.append(f"feature belongs to network {props['network']!r}, not {network!r}")
    try:
        geom = domain.floating(geometry.parse_boundary(feature.get("geometry"), "geometry"))
    except geometry.GeometryError as exc:
        reasons.append(f"geometry: {exc.message}")
        geom = None
    entry = {"index": i, "code": code if isinstance(code, str) else None, "name": name,
             "level": level, "kind": kind, "institution": institution,
             "parent_code": props.get("parent_code"), "division_code": props.get("division_code"),
             "geom": geom}
    return entry, reasons


# --------------------------------------------------------------------------
# import
# --------------------------------------------------------------------------


def import_features(session: Session, network: Network, features: list, *,
                    may_write: Callable[[int | None], bool] | None = None,
                    progress: Progress = _quiet, with_coverage: bool = True) -> dict:
    """Validate everything, then write everything (in the caller's transaction).

    ``may_write(grid_id)`` answers whether the caller may change the subtree
    under an existing grid (None: a new level-1 grid). Returns the report;
    when ``report["rejected"]`` is non-empty nothing was written.
    """
    lock_registry(session)
    progress(0.0, "reading")
    report: dict[str, Any] = {"network": network.code, "features": len(features), "created": 0,
                              "redrawn": 0, "unchanged": 0, "rejected": [], "overlaps": []}
    rejected: dict[int, list[str]] = defaultdict(list)

    rows = session.execute(
        select(Grid, GridVersion)
        .join(GridVersion, and_(GridVersion.grid_id == Grid.id, GridVersion.valid_to.is_(None)))
        .where(Grid.network_id == network.id, Grid.retired_at.is_(None))).all()
    existing = {grid.code: (grid, version) for grid, version in rows}
    code_of = {grid.id: grid.code for grid, _ in rows}
    existing_geom = dict(zip(existing, shapely.from_geojson([v.boundary for _, v in rows])
                             if rows else [], strict=True))
    divisions = {d.code: d for d in session.execute(select(Division)).scalars()}
    division_by_id = {d.id: d for d in divisions.values()}

    drafts: dict[str, dict] = {}
    for i, feature in enumerate(features):
        entry, reasons = _read_feature(i, feature, network.code)
        if entry is not None and entry["code"] in drafts:
            reasons.append(f"code {entry['code']} appears twice (first at feature {drafts[entry['code']]['index']})")
        if reasons or entry is None:
            rejected[i] += reasons
            if entry is not None and entry["code"] and entry["code"] not in drafts:
                drafts[entry["code"]] = entry | {"broken": True}
            continue
        drafts[entry["code"]] = entry
        if i % 500 == 0:
            progress(0.3 * i / max(len(features), 1), "checking features")

    # The network after the import: existing grids, overridden by the features.
    final: dict[str, dict] = {}
    for code, (grid, _version) in existing.items():
        final[code] = {"code": code, "level": grid.level, "kind": grid.kind, "id": grid.id,
                       "parent_code": code_of.get(grid.parent_id), "geom": existing_geom[code],
                       "division_code": division_by_id[grid.division_id].code if grid.division_id else None}
    for code, entry in drafts.items():
        final[code] = (final.get(code, {}) | {k: v for k, v in entry.items() if k != "index"}
                       | {"draft": True})

    def nearest_existing(code: str | None) -> int | None:
        seen = set()
        while code is not None and code not in seen:
            seen.add(code)
            if code in existing:
                return existing[code][0].id
            code = final.get(code, {}).get("parent_code")
        return None

    progress(0.3, "checking the tree")
    for code, entry in drafts.items():
        if entry.get("broken"):
            continue
        reasons = rejected[entry["index"]]
        parent = final.get(entry["parent_code"]) if entry["parent_code"] else None
        if entry["parent_code"] and parent is None:
            reasons.append(f"parent {entry['parent_code']} is not in the network or the import")
            continue
        level = domain.expected_level(parent["level"] if parent else None)
        if entry["level"] != level:
            reasons.append(f"level must be {level}" + (f" (one below {parent['code']})" if parent else
                                                       " for a grid without a parent"))
        if parent:
            if entry["division_code"] is None:
                entry["division_code"] = parent["division_code"]
            elif entry["division_code"] != parent["division_code"]:
                reasons.append(f"division {entry['division_code']} differs from the parent's")
        if entry["division_code"] is None:
            reasons.append("a level-1 grid names its community (division_code)")
        elif entry["division_code"] not in divisions:
            reasons.append(f"division {entry['division_code']} does not exist")
        final[code]["division_code"] = entry["division_code"]
        if code in existing:
            grid = existing[code][0]
            if (grid.level, grid.kind, code_of.get(grid.parent_id)) != (level, entry["kind"], entry["parent_code"]):
                reasons.append("level, kind and parent of an existing grid cannot change; retire it and create a new one")
            target = grid.id
        else:
            target = nearest_existing(entry["parent_code"])
        if may_write is not None and not may_write(target):
            reasons.append("outside your scope")

    progress(0.45, "checking boundaries")
    live = [(code, e) for code, e in drafts.items() if not e.get("broken") and e["geom"] is not None]
    # containment: one vectorised covers(), details only for the failures
    pairs = []
    for _code, entry in live:
        parent = final.get(entry["parent_code"]) if entry["parent_code"] else None
        if parent is not None and parent.get("geom") is not None:
            pairs.append((entry, parent["geom"], f"grid {parent['code']}"))
        elif parent is None and entry["division_code"] in divisions:
            pairs.append((entry, _division_geom(divisions[entry["division_code"]]),
                          f"division {entry['division_code']}"))
    if pairs:
        covered = shapely.covers(np.asarray([p[1] for p in pairs], dtype=object),
                                 np.asarray([p[0]["geom"] for p in pairs], dtype=object))
        for (entry, parent_geom, parent_name), ok in zip(pairs, covered, strict=True):
            if not ok:
                for problem in geometry.check_inside_parent(entry["geom"], parent_geom):
                    rejected[entry["index"]].append(f"{problem.message} {parent_name}")
    # children left as they are must still fit a redrawn parent
    for code, entry in live:
        if code in existing:
            for child_code, child in final.items():
                if child.get("parent_code") == code and not child.get("draft") and \
                        geometry.check_inside_parent(child["geom"], entry["geom"]):
                    rejected[entry["index"]].append(f"child grid {child_code} would stick out")

    progress(0.6, "checking overlaps")
    groups: dict[tuple, list] = defaultdict(list)
    for code, entry in final.items():
        if entry.get("geom") is not None and not entry.get("broken"):
            groups[(entry["level"], entry["kind"])].append((code, entry["geom"]))
    for (level, kind), items in groups.items():
        if not any(final[code].get("draft") for code, _ in items):
            continue
        for a, b, area in geometry.find_overlapping_pairs(items):
            report["overlaps"].append({"grids": [a, b], "level": level, "kind": kind,
                                       "overlap_m2": round(area, 3)})
            # Blame the imported side; if both are imported, the later feature.
            blamed = [code for code in (a, b) if final[code].get("draft")]
            mine = max(blamed, key=lambda code: drafts[code]["index"])
            other = b if mine == a else a
            rejected[drafts[mine]["index"]].append(f"overlaps grid {other} by {area:,.1f} m²")

    if with_coverage:
        progress(0.75, "measuring coverage")
        report["coverage"] = _coverage(final, divisions, drafts)

    report["rejected"] = [{"index": i, "code": features[i].get("properties", {}).get("code")
                           if isinstance(features[i], dict) and isinstance(features[i].get("properties"), dict)
                           else None, "reasons": reasons}
                          for i, reasons in sorted(rejected.items()) if reasons]
    if report["rejected"]:
        progress(1.0, "rejected")
        return report

    progress(0.85, "writing")
    _write(session, network, drafts, existing, divisions, report)
    progress(1.0, "done")
    return report


def _division_geom(division: Division):
    return shapely.from_geojson(division.boundary)


def _coverage(final: dict, divisions: dict, drafts: dict) -> dict:
    """How far each touched parent is tiled by its regular children (gap report)."""
    children: dict[str, list] = defaultdict(list)
    for code, entry in final.items():
        if entry.get("kind") == "regular" and entry.get("geom") is not None and not entry.get("broken"):
            key = entry["parent_code"] or f"division:{entry['division_code']}"
            children[key].append((code, entry["geom"]))
    touched = {key for key, items in children.items() if any(c in drafts for c, _ in items)}
    gaps, fractions, uncovered = [], [], 0.0
    for key in sorted(touched):
        if key.startswith("division:"):
            division = divisions.get(key.split(":", 1)[1])
            parent = _division_geom(division) if division else None
        else:
            parent = final.get(key, {}).get("geom")
        if parent is None:
            continue
        cover = geometry.coverage(parent, [g for _, g in children[key]])
        fractions.append(cover.fraction)
        uncovered += cover.uncovered_m2
        if cover.uncovered_m2 > geometry.OVERLAP_TOLERANCE_M2:
            gaps.append({"parent": key, "fraction": round(cover.fraction, 6),
                         "uncovered_m2": round(cover.uncovered_m2, 1)})
    return {"parents": len(fractions), "min_fraction": min(fractions, default=1.0),
            "uncovered_m2": round(uncovered, 1), "gaps": gaps}


def _write(session: Session, network: Network, drafts: dict, existing: dict, divisions: dict,
           report: dict) -> None:
    now = utcnow()
    ids = {code: grid.id for code, (grid, _) in existing.items()}
    created, redrawn = [], []
    # New grids level by level, so each parent has its id before its children.
    new = sorted((e for code, e in drafts.items() if code not in existing), key=lambda e: e["level"])
    for level in sorted({e["level"] for e in new}):
        batch = [e for e in new if e["level"] == level]
        rows = [{"network_id": network.id, "code": e["code"], "name": e["name"], "level": e["level"],
                 "kind": e["kind"], "institution": e["institution"],
                 "parent_id": ids[e["parent_code"]] if e["parent_code"] else None,
                 "division_id": divisions[e["division_code"]].id, "created_at": now} for e in batch]
        result = session.execute(insert(Grid.__table__).returning(Grid.__table__.c.id, sort_by_parameter_order=True), rows)
        for e, grid_id, row in zip(batch, result.scalars(), rows, strict=True):
            ids[e["code"]] = grid_id
            created.append((row | {"id": grid_id}, e))
    for code, entry in drafts.items():
        if code not in existing:
            continue
        grid, version = existing[code]
        same = shapely.equals_exact(shapely.normalize(entry["geom"]),
                                    shapely.normalize(shapely.from_geojson(version.boundary)), tolerance=1e-9)
        if same and (entry["name"], entry["institution"]) == (grid.name, grid.institution):
            report["unchanged"] += 1
            continue
        version.valid_to = now
        grid.name, grid.institution = entry["name"], entry["institution"]
        redrawn.append((grid, entry, version.version + 1))
    session.flush()
    versions = [version_row(row["id"], 1, e["geom"], now) for row, e in created]
    versions += [version_row(grid.id, number, e["geom"], now) for grid, e, number in redrawn]
    if versions:
        session.execute(insert(GridVersion.__table__), versions)
    division_by_id = {d.id: d for d in divisions.values()}
    record_events(session, GRID_CREATED, [
        (grid_event(row, vrow, network.code, division_by_id[row["division_id"]]), str(row["id"]))
        for (row, _), vrow in zip(created, versions, strict=False)])
    record_events(session, GRID_REDRAWN, [
        (grid_event(grid, vrow, network.code, division_by_id.get(grid.division_id)), str(grid.id))
        for (grid, _, _), vrow in zip(redrawn, versions[len(created):], strict=True)])
    report["created"], report["redrawn"] = len(created), len(redrawn)
    if created or redrawn:
        bump_revision(session)


# --------------------------------------------------------------------------
# export, files, the demo county
# --------------------------------------------------------------------------


def export_features(session: Session, network: Network) -> dict:
    rows = session.execute(
        select(Grid, GridVersion.boundary)
        .join(GridVersion, and_(GridVersion.grid_id == Grid.id, GridVersion.valid_to.is_(None)))
        .where(Grid.network_id == network.id, Grid.retired_at.is_(None))
        .order_by(Grid.level, Grid.id)).all()
    code_of = {grid.id: grid.code for grid, _ in rows}
    division_code = dict(session.execute(select(Division.id, Division.code)).all())
    features = [{"type": "Feature", "id": grid.id, "properties": {
        "code": grid.code, "name": grid.name, "level": grid.level, "kind": grid.kind,
        "parent_code": code_of.get(grid.parent_id), "division_code": division_code.get(grid.division_id),
        "institution": grid.institution}, "geometry": json.loads(boundary)} for grid, boundary in rows]
    return {"type": "FeatureCollection", "name": network.code, "features": features}


def import_file(runtime, path: str | Path, network: str, progress: bool = True) -> dict:
    """CLI entry: import a FeatureCollection file into ``network`` (all or nothing)."""
    collection = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection" \
            or not isinstance(collection.get("features"), list):
        raise ValueError(f"{path} is not a GeoJSON FeatureCollection")
    with runtime.db.transaction() as session:
        net = session.execute(select(Network).where(Network.code == network)).scalar_one_or_none()
        if net is None:
            raise ValueError(f"no network {network!r}")
        report = import_features(session, net, collection["features"],
                                 progress=progress_bar if progress else _quiet)
        if report["rejected"]:
            session.rollback()
    return report


def ensure_networks(session: Session, networks) -> dict[str, Network]:
    """The named networks, created (with their event) where missing."""
    have = {n.code: n for n in session.execute(select(Network)).scalars()}
    for code, name in networks:
        if code not in have:
            network = Network(code=code, name=name, created_at=utcnow())
            session.add(network)
            session.flush()
            record_events(session, NETWORK_CREATED, [({"id": network.id, "code": code, "name": name}, code)])
            have[code] = network
    return have


def import_county(runtime, county, user_id_of: Callable[[str], str | None] | None = None,
                  progress: bool = False) -> dict:
    """Load a ``demo.generate_county`` result: divisions, networks, grids (one
    transaction per network, validated like any import), buildings with units
    and households, and staffing (``user_id_of(person_key)`` gives the identity
    user id; None skips that person)."""
    bar = progress_bar if progress else _quiet
    summary: dict[str, Any] = {}
    with runtime.db.transaction() as session:
        lock_registry(session)
        ids: dict[str, int] = dict(session.execute(select(Division.code, Division.id)).all())
        for kind in domain.DIVISION_KINDS:
            batch = [d for d in county.divisions if d["kind"] == kind and d["code"] not in ids]
            if batch:
                rows = [{"code": d["code"], "name": d["name"], "kind": kind,
                         "parent_id": ids.get(d["parent_code"]) if d["parent_code"] else None,
                         "boundary": json.dumps(d["boundary"], separators=(",", ":"))} for d in batch]
                table = Division.__table__
                new_ids = list(session.execute(
                    insert(table).returning(table.c.id, sort_by_parameter_order=True), rows).scalars())
                ids.update(zip([d["code"] for d in batch], new_ids, strict=True))
                # Intake and dispatch learn the county, streets and communities from these.
                record_events(session, DIVISION_CREATED, [
                    ({"id": i, "code": d["code"], "name": d["name"], "kind": kind,
                      "parent_id": row["parent_id"], "boundary": d["boundary"]}, str(i))
                    for i, d, row in zip(new_ids, batch, rows, strict=True)])
        ensure_networks(session, [(n["code"], n["name"]) for n in county.networks])
        bump_revision(session)
    summary["divisions"] = len(county.divisions)
    for code, collection in county.to_feature_collections().items():
        with runtime.db.transaction() as session:
            network = session.execute(select(Network).where(Network.code == code)).scalar_one()
            report = import_features(session, network, collection["features"], with_coverage=False,
                                     progress=lambda f, s, c=code: bar(f, f"{c}: {s}"))
            if report["rejected"]:
                raise ValueError(f"network {code}: {len(report['rejected'])} features rejected: "
                                 f"{report['rejected'][:3]}")
        summary[code] = report["created"] + report["redrawn"] + report["unchanged"]
    with runtime.db.transaction() as session:
        summary |= _load_housing_and_staff(session, county, user_id_of)
        bump_revision(session)
    return summary


def _load_housing_and_staff(session: Session, county, user_id_of) -> dict:
    lock_registry(session)
    grid_ids: dict[tuple[str, str], int] = {}
    for grid_id, network, code in session.execute(
            select(Grid.id, Network.code, Grid.code).join(Network, Network.id == Grid.network_id)
            .where(Grid.retired_at.is_(None))):
        grid_ids[(network, code)] = grid_id
    by_code = {code: grid_id for (_, code), grid_id in grid_ids.items()}
    division_ids = dict(session.execute(select(Division.code, Division.id)).all())
    have = set(session.execute(select(Building.code)).scalars())
    buildings = [b for b in county.buildings if b["code"] not in have]
    rows = [{"code": b["code"], "name": b["name"], "grid_id": by_code[b["grid_code"]],
             "division_id": division_ids.get(b["division_code"]),
             "location": json.dumps(b["location"], separators=(",", ":")),
             "outline": json.dumps(b["outline"], separators=(",", ":")) if b.get("outline") else None,
             "created_at": utcnow()} for b in buildings]
    building_ids: dict[str, int] = {}
    if rows:
        result = session.execute(insert(Building.__table__).returning(Building.__table__.c.id, sort_by_parameter_order=True), rows)
        building_ids = dict(zip([b["code"] for b in buildings], result.scalars(), strict=True))
        record_events(session, BUILDING_CREATED, [
            ({"id": building_ids[r["code"]], "code": r["code"], "name": r["name"], "grid_id": r["grid_id"],
              "division_id": r["division_id"], "location": json.loads(r["location"]),
              "outline": json.loads(r["outline"]) if r["outline"] else None}, str(building_ids[r["code"]]))
            for r in rows])
        units = [(b["code"], u) for b in buildings for u in b["units"]]
        result = session.execute(insert(Unit.__table__).returning(Unit.__table__.c.id, sort_by_parameter_order=True), [
            {"building_id": building_ids[code], "code": u["code"], "name": u["name"]} for code, u in units])
        unit_ids = list(result.scalars())
        households = [{"unit_id": unit_id, "code": h["code"], "floor": h["floor"]}
                      for unit_id, (_, u) in zip(unit_ids, units, strict=True) for h in u["households"]]
        if households:
            session.execute(insert(Household.__table__), households)
        households_n = len(households)
    else:
        households_n = 0
    staff = 0
    if user_id_of is not None:
        now = utcnow()
        rows = []
        all_buildings = dict(session.execute(select(Building.code, Building.id)).all())
        for s in county.staff:
            user_id = user_id_of(s["key"])
            if user_id is None:
                continue
            grid_id = grid_ids.get((s["network"], s["grid_code"])) if s["network"] else by_code.get(s["grid_code"])
            if grid_id is None:
                continue
            rows.append({"grid_id": grid_id, "user_id": str(user_id), "role": s["role"], "since": now,
                         "building_id": all_buildings.get(s["building_code"]) if s["building_code"] else None,
                         "until": None, "assigned_by": None})
        if rows:
            result = session.execute(
                insert(StaffAssignment.__table__).returning(StaffAssignment.__table__.c.id, sort_by_parameter_order=True), rows)
            network_of = {grid_id: network for (network, _), grid_id in grid_ids.items()}
            record_events(session, STAFF_ASSIGNED, [
                ({"assignment_id": aid, "grid_id": r["grid_id"], "network": network_of[r["grid_id"]],
                  "building_id": r["building_id"], "user_id": r["user_id"], "role": r["role"],
                  "since": r["since"], "until": None}, str(r["grid_id"]))
                for aid, r in zip(result.scalars(), rows, strict=True)])
        staff = len(rows)
    return {"buildings": len(buildings), "households": households_n, "staff": staff}
