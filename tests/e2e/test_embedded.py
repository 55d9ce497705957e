"""`make run`'s command: every service in one process, no servers, demo data."""

import os
import subprocess

import requests

from gridkit.testkit import wait_for

from .conftest import BIN, ROOT, free_port


def test_the_embedded_platform_starts_with_a_demo_county_and_answers(tmp_path):
    ports = {"identity": free_port(), "grids": free_port(), "points": free_port()}
    env = dict(os.environ) | {
        "GRIDGOV_DATA_DIR": str(tmp_path),
        "GRIDGOV_IDENTITY_PORT": str(ports["identity"]),
        "GRIDGOV_GRIDS_PORT": str(ports["grids"]),
        "GRIDGOV_POINTS_PORT": str(ports["points"]),
        "GRIDGOV_IDENTITY_URL": f"http://127.0.0.1:{ports['identity']}",
    }
    for name in list(env):  # embedded means no broker and no PostgreSQL from the environment
        if name.endswith("_DATABASE_URL") or name in ("GRIDGOV_BUS_URL", "GRIDGOV_JWKS_URL"):
            env.pop(name)
    log = open(tmp_path / "run.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([str(BIN / "gridgov"), "run", "--scale", "0.01"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    identity, grids = (f"http://127.0.0.1:{ports[n]}" for n in ("identity", "grids"))
    try:
        def up():
            try:
                return requests.get(grids + "/readyz", timeout=1).status_code == 200
            except requests.RequestException:
                return proc.poll() is not None
        wait_for(up, timeout=120, interval=0.5, message="the embedded platform")
        assert proc.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
        wait_for(lambda: "Press Ctrl+C" in (tmp_path / "run.log").read_text(), timeout=30,
                 message="the banner")
        banner = (tmp_path / "run.log").read_text()
        assert "Demo accounts" in banner and "13800000001" in banner

        token = requests.post(identity + "/tokens", json={
            "grant_type": "password", "phone": "13800000001", "password": "gridgov-demo"}, timeout=10)
        assert token.status_code == 200, token.text
        assert token.headers["Cache-Control"] == "no-store"
        assert "Server" not in token.headers, token.headers  # werkzeug's banner names its version
        assert token.headers["X-Content-Type-Options"] == "nosniff"
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        grids_page = requests.get(grids + "/grids", params={"network": "security", "level": 1, "limit": 1},
                                  headers=headers, timeout=10).json()
        first = grids_page["items"][0]
        assert first["network"] == "security"
        full = requests.get(f"{grids}/grids/{first['id']}", headers=headers, timeout=10).json()
        ring = full["boundary"]["coordinates"][0]
        lon = sum(p[0] for p in ring[:-1]) / (len(ring) - 1)
        lat = sum(p[1] for p in ring[:-1]) / (len(ring) - 1)
        located = requests.get(grids + "/locate", params={"lon": lon, "lat": lat}, headers=headers, timeout=10)
        assert located.status_code == 200
        assert {g["network"] for g in located.json()["grids"]} == {"security", "party", "urban"}

        # Staff names reached grids over the in-memory bus (identity.user.registered).
        def staff_named():
            staff = requests.get(f"{grids}/grids/{first['id']}/staff", headers=headers, timeout=10).json()
            return staff["current"] and all(s["display_name"] for s in staff["current"])

        wait_for(staff_named, timeout=60, interval=0.5, message="staff names to reach grids")

        # The points programme lives: the resident's redemption waits with its code, the
        # demo keeper hands it over.
        points = f"http://127.0.0.1:{ports['points']}"
        waiting = [r for r in requests.get(points + "/me/redemptions", headers=headers, timeout=10).json()["items"]
                   if r["status"] == "held"]
        assert waiting and waiting[0]["code"], waiting
        keeper = requests.post(identity + "/tokens", json={
            "grant_type": "password", "username": "keeper", "password": "gridgov-demo"}, timeout=10).json()
        handed = requests.post(f"{points}/supermarkets/{waiting[0]['supermarket_id']}/hand-overs",
                               json={"code": waiting[0]["code"]}, timeout=10,
                               headers={"Authorization": f"Bearer {keeper['access_token']}"})
        assert handed.status_code == 200 and handed.json()["status"] == "handed_over", handed.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
