"""The demo county for embedded mode: people in identity, places in grids.

Runs each service's own seeding functions against its own runtime (no
service touches another's tables). Idempotent: a marker file in the data
folder records that the county was loaded and which accounts to show.
"""

from __future__ import annotations

import json
import time

from .service import Runtime

DEMO_PASSWORD = "gridgov-demo"
RESIDENT = {"phone": "13800000001", "name": "王小明", "kind": "resident", "password": DEMO_PASSWORD}


def seed_demo(runtimes: dict[str, Runtime], *, scale: float) -> list[dict]:
    identity, grids = runtimes.get("identity"), runtimes.get("grids")
    if identity is None or grids is None:
        return []
    marker = identity.settings.data_dir / "demo-seeded.json"
    if marker.exists():
        return json.loads(marker.read_text())["accounts"]

    from grids.demo import generate_county
    from grids.importer import import_county
    from identity import accounts as identity_accounts
    from identity import demo as identity_demo
    from identity.tables import User

    started = time.perf_counter()
    print(f"gridgov: generating a demo county (scale {scale}) …", flush=True)
    county = generate_county(seed=7, scale=scale)
    user_ids = identity_demo.add_staff(identity, [
        {"key": s["key"], "name": s["name"], "phone": s["phone"]} for s in county.staff])
    print(f"gridgov: {len(user_ids)} staff accounts; importing {len(county.grids)} grids …", flush=True)
    import_county(grids, county, user_id_of=user_ids.get, progress=True)

    grid_ids = _grid_ids(grids)
    building_grid = {b["code"]: b["grid_code"] for b in county.buildings}
    with identity.db.transaction() as session:
        for s in county.staff:
            grid_code = s.get("grid_code") or building_grid.get(s.get("building_code"))
            network = s.get("network") or "security"
            grid_id = grid_ids.get((network, grid_code or ""))
            if grid_id is None or s["key"] not in user_ids:
                continue
            user = session.get(User, user_ids[s["key"]])
            identity_accounts.grant(session, user, s["role"], f"grid:{grid_id}", by=None)

    # A worker and a head of the first security grid can log in with the demo password.
    # Cases go to the deepest grid at a place: show a worker of a leaf grid.
    grids_by_code = {(g["network"], g["code"]): g for g in county.grids}
    parents = {(g["network"], g["parent_code"]) for g in county.grids if g["parent_code"]}
    first = next(s for s in county.staff if s["role"] == "grid_worker" and s["network"] == "security"
                 and ("security", s["grid_code"]) not in parents
                 and grids_by_code[("security", s["grid_code"])]["kind"] == "regular")
    head = next(s for s in county.staff if s["role"] == "grid_head" and s["grid_code"] == first["grid_code"])
    with identity.db.transaction() as session:
        for s in (first, head):
            identity_accounts.set_password(session, session.get(User, user_ids[s["key"]]), DEMO_PASSWORD)
    community = grids_by_code[("security", first["grid_code"])]["division_code"]
    seeded = identity_demo.seed(identity, [RESIDENT, {
        "username": "community", "name": "社区管理员", "kind": "staff", "password": DEMO_PASSWORD,
        "grants": [("community_admin", f"division:{community}")]}])
    accounts = [
        {"role": "resident", "phone": RESIDENT["phone"], "password": DEMO_PASSWORD},
        {"role": "grid_worker", "phone": first["phone"], "password": DEMO_PASSWORD,
         "note": f"({first['name']}, grid {first['grid_code']})"},
        {"role": "grid_head", "phone": head["phone"], "password": DEMO_PASSWORD,
         "note": f"({head['name']}, grid {head['grid_code']})"},
        {"role": "community_admin", "phone": "username community", "password": DEMO_PASSWORD,
         "note": f'(community {community}; log in with {{"username": "community"}})'},
        {"role": "county_admin", "phone": "username county", "password": "gridgov-county",
         "note": '(log in with {"username": "county"})'},
        {"role": "sysadmin", "phone": "username sysadmin", "password": "gridgov-sysadmin",
         "note": '(log in with {"username": "sysadmin"})'},
    ]
    # Every other service's share of the county, through its spec (the kit names none of them).
    communities = sorted(({"code": d["code"], "name": d["name"]} for d in county.divisions
                          if d["kind"] == "community"), key=lambda d: d["code"] != community)
    context = {"communities": communities, "resident_id": seeded.get(RESIDENT["phone"])}
    for runtime in runtimes.values():
        if runtime.spec.demo is not None:
            share = runtime.spec.demo(runtime, context) or {}
            if share.get("people"):
                identity_demo.seed(identity, share["people"], demo_admins=False)
            accounts += share.get("accounts", [])
    marker.write_text(json.dumps({"scale": scale, "accounts": accounts}, ensure_ascii=False))
    print(f"gridgov: demo county ready in {time.perf_counter() - started:.0f} s", flush=True)
    return accounts


def _grid_ids(grids: Runtime) -> dict[tuple[str, str], int]:
    from sqlalchemy import select

    from grids.tables import Grid, Network

    with grids.db.transaction() as session:
        rows = session.execute(select(Network.code, Grid.code, Grid.id)
                               .join(Network, Network.id == Grid.network_id)).all()
    return {(network, code): grid_id for network, code, grid_id in rows}
