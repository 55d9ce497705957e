"""Locate: gridgov's full answer next to a bare STRtree and PostGIS.

* ``locate_batch_vs_strtree``: points/s for the full answer (every network,
  every level, divisions, buildings) from ``grids.locate.locate_batch``,
  against a bare shapely STRtree query over one network's leaf grids.
* ``locate_batch_vs_postgis``: the same full answer against PostGIS
  ``ST_Contains`` with a GiST index over the same polygons (skipped, saying
  so, when the PostGIS extension is not installed).
* ``locate_http_p99_ms``: single-point ``GET /locate`` through gunicorn on
  PostgreSQL, next to ``GET /healthz`` on the same server.
"""

from __future__ import annotations

import json
import time

import numpy as np
import psycopg
import shapely

from grids.demo import generate_county
from grids.locate import RegistryIndex, locate_batch

from .common import Figure

BATCH = 10_000
ROUNDS = 7


def random_points(county, n: int, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    outline = shapely.from_geojson(json.dumps(next(d for d in county.divisions if d["kind"] == "county")["boundary"]))
    minx, miny, maxx, maxy = outline.bounds
    rng = np.random.default_rng(seed)
    return rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)


def best_rate(fn, n: int, rounds: int = ROUNDS) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return n / best


def run(*, pg_url: str, amqp_url: str, scale: float = 1.0) -> list[Figure]:
    started = time.perf_counter()
    county = generate_county(seed=7, scale=scale)
    print(f"county generated: {len(county.grids)} grids, {len(county.buildings)} buildings "
          f"({time.perf_counter() - started:.1f} s)", flush=True)
    index = RegistryIndex.from_county(county)
    lons, lats = random_points(county, BATCH)
    ours = best_rate(lambda: locate_batch(index, lons, lats), BATCH)
    answered = locate_batch(index, lons, lats)
    per_point = len(answered.grid) / BATCH
    print(f"gridgov locate_batch: {ours:,.0f} points/s ({per_point:.1f} grids per point)", flush=True)

    leaf = _security_leaves(county)
    tree = shapely.STRtree(leaf)
    points = shapely.points(lons, lats)
    bare = best_rate(lambda: tree.query(shapely.points(lons, lats), predicate="intersects"), BATCH)
    print(f"bare STRtree (security leaf grids, {len(leaf)}): {bare:,.0f} points/s", flush=True)
    del points

    figures = [Figure("locate_batch_vs_strtree", ours, "points/s", bare, ">= 0.3",
                      notes=[f"full answer: {per_point:.1f} grids per point over {len(county.grids)} grids "
                             f"in {len(county.networks)} networks; bare: {len(leaf)} security leaf grids"])]
    postgis = _postgis_rate(pg_url, county, lons, lats)
    if postgis is None:
        figures.append(Figure("locate_batch_vs_postgis", ours, "points/s", None, ">= 10",
                              notes=["PostGIS is not installed here: baseline skipped "
                                     "(apt-get install postgresql-15-postgis-3 to measure it)"]))
    else:
        print(f"PostGIS ST_Contains + GiST: {postgis:,.0f} points/s", flush=True)
        figures.append(Figure("locate_batch_vs_postgis", ours, "points/s", postgis, ">= 10",
                              notes=["PostGIS answers the same full question: every grid of every network"]))
    figures.append(_http_latency(pg_url, county, lons, lats))
    return figures


def _security_leaves(county) -> list:
    parents = {g["parent_code"] for g in county.grids if g["network"] == "security" and g["parent_code"]}
    leaves = [g for g in county.grids if g["network"] == "security" and g["kind"] == "regular"
              and g["code"] not in parents]
    return list(shapely.from_geojson([json.dumps(g["boundary"]) for g in leaves]))


def _postgis_rate(pg_url: str, county, lons, lats) -> float | None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        except psycopg.Error:
            return None
        conn.execute("DROP TABLE IF EXISTS bench_grids")
        conn.execute("CREATE TABLE bench_grids (id int primary key, geom geometry(Geometry, 4326))")
        with conn.cursor().copy("COPY bench_grids (id, geom) FROM STDIN") as copy:
            for i, g in enumerate(county.grids):
                wkt = shapely.to_wkt(shapely.from_geojson(json.dumps(g["boundary"])), rounding_precision=7)
                copy.write_row((i, f"SRID=4326;{wkt}"))
        conn.execute("CREATE INDEX ON bench_grids USING gist (geom)")
        conn.execute("ANALYZE bench_grids")
        query = """SELECT p.i, g.id FROM unnest(%s::float8[], %s::float8[]) WITH ORDINALITY AS p(lon, lat, i)
                   JOIN bench_grids g ON ST_Contains(g.geom, ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326))"""
        lon_list, lat_list = lons.tolist(), lats.tolist()
        return best_rate(lambda: conn.execute(query, (lon_list, lat_list)).fetchall(), len(lon_list), rounds=3)


def _http_latency(pg_url: str, county, lons, lats) -> Figure:
    from .serving import grids_server, latencies

    with grids_server(pg_url, county) as base:
        for i in range(50):  # warm both workers' indexes
            latencies(base, [f"/locate?lon={lons[i]}&lat={lats[i]}"])
        paths = [f"/locate?lon={lons[i]:.6f}&lat={lats[i]:.6f}" for i in range(2000)]
        locate_ms = latencies(base, paths)
        health_ms = latencies(base, ["/healthz"] * 2000)
    p50, p99 = np.percentile(locate_ms, [50, 99])
    h99 = float(np.percentile(health_ms, 99))
    print(f"GET /locate p50 {p50:.2f} ms, p99 {p99:.2f} ms (GET /healthz p99 {h99:.2f} ms)", flush=True)
    return Figure("locate_http_p99_ms", float(p99), "ms", h99, "< 50", target_on="value",
                  notes=[f"p50 {p50:.2f} ms; gunicorn 2 workers x 4 threads on PostgreSQL, "
                         f"{len(county.grids)} grids; baseline = GET /healthz p99 on the same server"])
