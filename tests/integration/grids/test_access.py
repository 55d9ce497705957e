"""Role × endpoint matrix: every route, the ten roles and no token; then scope cases."""

import itertools
import uuid

import pytest

from gridkit.auth import ROLES
from gridkit.config import Settings
from gridkit.service import Runtime
from grids.service import spec
from grids.testing import grid_body, rect, seed_divisions

READ = set(ROLES)
COUNTY = {"county_admin", "sysadmin"}
ADMINS = COUNTY | {"street_admin", "community_admin"}
STAFFING = ADMINS | {"grid_head"}
HOUSING = ADMINS | {"building_manager"}
MANAGER = str(uuid.uuid4())


class World:
    """One registry for the whole matrix: A (west, with child A1 and a building) and B (east)."""

    def __init__(self, runtime, tokens):
        self.runtime = runtime
        self.client = runtime.app(testing=True).test_client()
        self.tokens = tokens
        self.admin = tokens.header(("county_admin", "county"))
        self.counter = itertools.count()
        divisions = seed_divisions(runtime)
        self.community = divisions["DL-01-01"]
        self.a = self.post("/grids", grid_body("A", rect(100.0, 25.0, 100.05, 25.1), division_id=self.community))
        self.a1 = self.post("/grids", grid_body("A1", rect(100.0, 25.0, 100.05, 25.05), parent_id=self.a))
        self.b = self.post("/grids", grid_body("B", rect(100.05, 25.0, 100.1, 25.1), division_id=self.community))
        self.building = self.post("/buildings", {"code": "BLD", "name": "1栋", "grid_id": self.a1,
                                                 "location": {"type": "Point", "coordinates": [100.049, 25.049]}})
        self.unit = self.post(f"/buildings/{self.building}/units", {"code": "1", "name": "1单元"})
        self.household = self.post(f"/units/{self.unit}/households", {"code": "1-101"})
        self.post(f"/grids/{self.a1}/staff", {"user_id": MANAGER, "role": "building_manager",
                                              "building_id": self.building})

    def post(self, path, body):
        response = self.client.post(path, json=body, headers=self.admin)
        assert response.status_code == 201, response.json
        return response.json["id"]

    def box(self):
        """A fresh 0.001° square inside A1 (level-3 grids never overlap)."""
        i = next(self.counter)
        x, y = 100.0 + 0.001 * (i % 45), 25.0 + 0.001 * (i // 45)
        return f"T{i}", rect(x, y, x + 0.001, y + 0.001)

    def headers(self, role):
        if role is None:
            return {}
        scope = {"dept_officer": "department:police", "resident": "county", "volunteer": "county",
                 "county_admin": "county", "sysadmin": "county"}.get(role, f"grid:{self.a}")
        return self.tokens.header((role, scope), sub=MANAGER if role == "building_manager" else None)


@pytest.fixture(scope="module")
def world(fresh_pg_database, tokens, tmp_path_factory):
    settings = Settings(service="grids", database_url=fresh_pg_database("access"), bus_url="memory://access",
                        data_dir=tmp_path_factory.mktemp("access"))
    runtime = Runtime.build(spec, settings, verifier=tokens.verifier(), migrate=True)
    yield World(runtime, tokens)
    runtime.bus.close()
    runtime.db.dispose()


def new_child(w):
    code, box = w.box()
    return w.post("/grids", grid_body(code, box, parent_id=w.a1))


def new_worker(w):
    response = w.client.post(f"/grids/{w.a1}/staff", json={"user_id": str(uuid.uuid4()), "role": "grid_worker"},
                             headers=w.admin)
    return response.json["id"]


def feature_collection(w):
    code, box = w.box()
    return {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": box, "properties": {
        "code": code, "name": code, "level": 3, "kind": "regular", "parent_code": "A1"}}]}


ENDPOINTS = {
    "GET /networks": (READ, lambda w: ("GET", "/networks", None)),
    "POST /networks": (COUNTY, lambda w: ("POST", "/networks", {"code": f"n{next(w.counter)}", "name": "网"})),
    "GET /divisions": (READ, lambda w: ("GET", "/divisions", None)),
    "POST /divisions": (COUNTY, lambda w: ("POST", "/divisions", {
        "code": f"X{(i := next(w.counter))}", "name": "县", "kind": "county",
        "boundary": rect(10 + i, 10, 10.5 + i, 10.5)})),
    "GET /grids": (READ, lambda w: ("GET", "/grids?network=security", None)),
    "POST /grids": (ADMINS, lambda w: ("POST", "/grids", grid_body(*w.box(), parent_id=w.a1))),
    "GET /grids/<id>": (READ, lambda w: ("GET", f"/grids/{w.a1}", None)),
    "PUT /grids/<id>/boundary": (ADMINS, lambda w: ("PUT", f"/grids/{w.a1}/boundary",
                                                    {"boundary": rect(100.0, 25.0, 100.05, 25.05)})),
    "POST /grids/<id>/retire": (ADMINS, lambda w: ("POST", f"/grids/{new_child(w)}/retire", {})),
    "GET /grids/<id>/history": (READ, lambda w: ("GET", f"/grids/{w.a1}/history", None)),
    "GET /grids/<id>/coverage": (READ, lambda w: ("GET", f"/grids/{w.a}/coverage", None)),
    "GET /grids/<id>/staff": (READ, lambda w: ("GET", f"/grids/{w.a1}/staff", None)),
    "POST /grids/<id>/staff": (STAFFING, lambda w: ("POST", f"/grids/{w.a1}/staff",
                                                    {"user_id": str(uuid.uuid4()), "role": "grid_worker"})),
    "DELETE /grids/<id>/staff/<id>": (STAFFING, lambda w: ("DELETE", f"/grids/{w.a1}/staff/{new_worker(w)}", None)),
    "GET /buildings": (READ, lambda w: ("GET", f"/buildings?grid={w.a1}", None)),
    "POST /buildings": (ADMINS, lambda w: ("POST", "/buildings", {
        "code": f"B{(i := next(w.counter))}", "name": "楼", "grid_id": w.a1,
        "location": {"type": "Point", "coordinates": [100.001 + 0.0001 * (i % 400), 25.04]}})),
    "GET /buildings/<id>": (READ, lambda w: ("GET", f"/buildings/{w.building}", None)),
    "POST /buildings/<id>/units": (ADMINS, lambda w: ("POST", f"/buildings/{w.building}/units",
                                                      {"code": f"u{next(w.counter)}", "name": "单元"})),
    "POST /units/<id>/households": (HOUSING, lambda w: ("POST", f"/units/{w.unit}/households",
                                                        {"code": f"h{next(w.counter)}", "floor": 2})),
    "GET /households/<id>": (READ, lambda w: ("GET", f"/households/{w.household}", None)),
    "POST /households/<id>/residents": (HOUSING, lambda w: ("POST", f"/households/{w.household}/residents",
                                                            {"user_id": str(uuid.uuid4())})),
    "GET /locate": (READ, lambda w: ("GET", "/locate?lon=100.01&lat=25.01", None)),
    "POST /locate": (READ, lambda w: ("POST", "/locate", {"points": [[100.01, 25.01]]})),
    "POST /networks/<code>/import": (ADMINS, lambda w: ("POST", "/networks/security/import", feature_collection(w))),
    "GET /networks/<code>/export": (READ, lambda w: ("GET", "/networks/security/export", None)),
}


@pytest.mark.parametrize("role", [*ROLES, None], ids=[*ROLES, "no-token"])
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_every_endpoint_allows_exactly_its_roles(world, endpoint, role):
    allowed, make = ENDPOINTS[endpoint]
    method, path, body = make(world)
    response = world.client.open(path, method=method, json=body, headers=world.headers(role))
    if role is None:
        assert response.status_code == 401
    elif role in allowed:
        assert 200 <= response.status_code < 300, response.json
    else:
        assert response.status_code == 403, response.json


def test_a_service_account_without_grants_may_read(world):
    headers = {"Authorization": f"Bearer {world.tokens.issue(kind='service')}"}
    assert world.client.get(f"/grids/{world.a}", headers=headers).status_code == 200
    assert world.client.post("/locate", json={"points": [[100.0, 25.0]]}, headers=headers).status_code == 200
    assert world.client.post("/grids", json={}, headers=headers).status_code == 403


@pytest.mark.parametrize("role", ["community_admin", "street_admin"])
def test_a_subtree_admin_cannot_touch_grids_outside_their_subtree(world, role):
    w, mine = world, world.headers(role)
    code, box = w.box()
    outside = grid_body(code, rect(100.06, 25.0, 100.061, 25.001), parent_id=w.b)
    assert w.client.post("/grids", json=outside, headers=mine).status_code == 403
    assert w.client.post("/grids", json=grid_body(code, box, division_id=w.community),
                         headers=mine).status_code == 403  # a new level-1 grid is county business
    assert w.client.put(f"/grids/{w.b}/boundary", json={"boundary": rect(100.05, 25.0, 100.1, 25.1)},
                        headers=mine).status_code == 403
    assert w.client.post(f"/grids/{w.b}/retire", json={}, headers=mine).status_code == 403
    assert w.client.post(f"/grids/{w.b}/staff", json={"user_id": str(uuid.uuid4()), "role": "grid_worker"},
                         headers=mine).status_code == 403
    assert w.client.post("/buildings", headers=mine, json={
        "code": "OUT", "name": "外", "grid_id": w.b,
        "location": {"type": "Point", "coordinates": [100.07, 25.05]}}).status_code == 403
    # the same calls inside the subtree pass
    assert w.client.post("/grids", json=grid_body(code, box, parent_id=w.a1), headers=mine).status_code == 201


def test_a_grid_head_adds_workers_in_their_grid_only_and_never_a_head(world):
    w, head = world, world.headers("grid_head")
    person = {"user_id": str(uuid.uuid4())}
    assert w.client.post(f"/grids/{w.a1}/staff", json=person | {"role": "grid_worker"}, headers=head).status_code == 201
    assert w.client.post(f"/grids/{w.a1}/staff", json=person | {"role": "grid_head"}, headers=head).status_code == 403
    assert w.client.post(f"/grids/{w.b}/staff", json=person | {"role": "grid_worker"}, headers=head).status_code == 403


def test_a_building_manager_manages_only_their_own_building(world):
    w = world
    other = w.post("/buildings", {"code": f"O{next(w.counter)}", "name": "2栋", "grid_id": w.a1,
                                  "location": {"type": "Point", "coordinates": [100.002, 25.03]}})
    unit = w.post(f"/buildings/{other}/units", {"code": "1", "name": "1单元"})
    manager = w.headers("building_manager")
    assert w.client.post(f"/units/{unit}/households", json={"code": "9-9"}, headers=manager).status_code == 403
    stranger = w.tokens.header(("building_manager", f"grid:{w.a}"))  # right role, not their building
    assert w.client.post(f"/units/{w.unit}/households", json={"code": "9-8"}, headers=stranger).status_code == 403


def test_a_community_admin_scoped_to_their_community_acts_on_every_grid_in_it(world):
    w = world
    community_admin = w.tokens.header(("community_admin", "division:DL-01-01"))
    street_admin = w.tokens.header(("street_admin", "division:DL-01"))
    neighbour_admin = w.tokens.header(("community_admin", "division:DL-01-02"))
    for headers in (community_admin, street_admin):
        code, box = w.box()
        assert w.client.post("/grids", json=grid_body(code, box, parent_id=w.a1), headers=headers).status_code == 201
        assert w.client.post(f"/grids/{w.b}/staff", json={"user_id": str(uuid.uuid4()), "role": "grid_worker"},
                             headers=headers).status_code == 201
    code, box = w.box()
    assert w.client.post("/grids", json=grid_body(code, box, parent_id=w.a1),
                         headers=neighbour_admin).status_code == 403
    assert w.client.post(f"/grids/{w.b}/retire", json={}, headers=neighbour_admin).status_code == 403
