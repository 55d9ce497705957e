"""Each process keeps its own locate index and follows registry_revision."""

from dataclasses import replace

from gridkit.service import Runtime
from grids.service import spec

from .conftest import make_grid


def test_another_worker_sees_a_redraw_at_its_next_request(registry, client, admin, community, tokens):
    grid = make_grid(client, admin, "S-1", (100.0, 25.0, 100.05, 25.1), division_id=community)
    # a second "gunicorn worker": its own runtime, app and index on the same database
    other = Runtime.build(spec, replace(registry.settings), verifier=tokens.verifier())
    try:
        other_client = other.app(testing=True).test_client()
        point = "/locate?lon=100.06&lat=25.05"
        assert other_client.get(point, headers=admin).json["grids"] == []
        builds = other.extras["registry"].builds
        assert other_client.get(point, headers=admin).json["grids"] == []
        assert other.extras["registry"].builds == builds  # unchanged revision: no rebuild
        from grids.testing import rect
        redraw = client.put(f"/grids/{grid['id']}/boundary", json={"boundary": rect(100.0, 25.0, 100.07, 25.1)},
                            headers=admin)
        assert redraw.status_code == 200
        assert [g["code"] for g in other_client.get(point, headers=admin).json["grids"]] == ["S-1"]
        assert other.extras["registry"].builds == builds + 1
    finally:
        other.bus.close()
        other.db.dispose()
