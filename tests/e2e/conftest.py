"""Each service as its own gunicorn process (and its own worker process) on
real PostgreSQL and RabbitMQ, the way production runs them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DATA_KEY = "ZTJlLWRhdGEta2V5LTAxMjM0NTY3ODlhYmNkZWYwMTI="  # 32 bytes, urlsafe base64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Platform:
    env: dict[str, str]
    urls: dict[str, str] = field(default_factory=dict)
    processes: list[subprocess.Popen] = field(default_factory=list)
    logs: Path | None = None

    def url(self, service: str, path: str = "") -> str:
        return self.urls[service] + path

    def spawn(self, name: str, args: list[str], extra_env: dict | None = None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(args, cwd=ROOT, env=self.env | (extra_env or {}), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def platform(fresh_pg_database, amqp_url, tmp_path_factory):
    from gridkit import registry

    services = registry.available()
    tmp = tmp_path_factory.mktemp("platform")
    env = dict(os.environ) | {
        "GRIDGOV_BUS_URL": amqp_url,
        "GRIDGOV_DATA_KEY": DATA_KEY,
        "GRIDGOV_DATA_DIR": str(tmp),
        "GRIDGOV_LOG_LEVEL": "INFO",
        "GRIDGOV_WEB_WORKERS": "2",
    }
    ports = {name: free_port() for name in services}
    env["GRIDGOV_IDENTITY_URL"] = f"http://127.0.0.1:{ports['identity']}"
    env.pop("GRIDGOV_JWKS_URL", None)
    for name in services:
        env[f"GRIDGOV_{name.upper()}_DATABASE_URL"] = fresh_pg_database(f"e2e_{name}")
    platform = Platform(env=env, logs=tmp)
    migrated = subprocess.run([str(BIN / "gridgov"), "migrate", "all"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    try:
        for name in services:
            metrics_dir = tmp / f"metrics-{name}"
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir()
            platform.spawn(f"{name}-web", [
                str(BIN / "gunicorn"), f'gridkit.wsgi:create("{name}")', "-c", "deploy/gunicorn.conf.py",
                "--bind", f"127.0.0.1:{ports[name]}",
            ], {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})
            platform.spawn(f"{name}-worker", [str(BIN / "gridgov"), "worker", name])
            platform.urls[name] = f"http://127.0.0.1:{ports[name]}"
        for name in services:
            _wait_ready(platform, name)
        yield platform
    finally:
        platform.stop()


def _wait_ready(platform: Platform, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(platform.url(name, "/readyz"), timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    logs = (platform.logs / f"{name}-web.log").read_text(errors="replace")[-3000:]
    raise AssertionError(f"{name} never became ready:\n{logs}")
