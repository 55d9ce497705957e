"""The platform as real processes: each service a gunicorn and a worker.

Used by the end-to-end tests and the benchmarks, which run gridgov the way
production does (mode 2 in docs/architecture.md).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A free port below the ephemeral range: a port the kernel hands out (bind to 0)
    may be taken as some client's source port before our server binds it."""
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randint(max(1025, low - 12000), low - 1)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


@dataclass
class Platform:
    env: dict[str, str]
    logs: Path
    urls: dict[str, str] = field(default_factory=dict)
    # Where each service's `gridgov worker` serves /metrics, /healthz and /readyz.
    worker_urls: dict[str, str] = field(default_factory=dict)
    worker_env: dict[str, str] = field(default_factory=dict)  # what workers get beside env
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def url(self, service: str, path: str = "") -> str:
        return self.urls[service] + path

    def worker_url(self, service: str, path: str = "") -> str:
        return self.worker_urls[service] + path

    def spawn(self, name: str, args: list[str], extra_env: dict | None = None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen(args, cwd=ROOT, env=self.env | (extra_env or {}), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.processes[name] = proc
        return proc

    def start_web(self, service: str) -> subprocess.Popen:
        """The service's gunicorn, on the port it had before if it is restarted, with an
        empty Prometheus multiprocess directory of its own."""
        if service not in self.urls:
            self.urls[service] = f"http://127.0.0.1:{free_port()}"
        metrics_dir = self.logs / f"metrics-{service}"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        return self.spawn(f"{service}-web", [
            str(BIN / "gunicorn"), f'gridkit.wsgi:create("{service}")', "-c", "deploy/gunicorn.conf.py",
            "--bind", self.urls[service].removeprefix("http://")], {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})

    def start_worker(self, service: str) -> subprocess.Popen:
        """The service's worker, on the probe port it had before if it is restarted."""
        if service not in self.worker_urls:
            self.worker_urls[service] = f"http://127.0.0.1:{free_port()}"
        bind = self.worker_urls[service].removeprefix("http://")
        return self.spawn(f"{service}-worker", [str(BIN / "gridgov"), "worker", service],
                          self.worker_env | {"GRIDGOV_WORKER_BIND": bind})

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.processes[name]
        os.killpg(proc.pid, sig)
        proc.wait(timeout=30)

    def gridgov(self, *args: str, extra_env: dict | None = None, timeout: float = 120) -> str:
        done = subprocess.run([str(BIN / "gridgov"), *args], cwd=ROOT, env=self.env | (extra_env or {}),
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"gridgov {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self.processes.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    def wait_ready(self, service: str, timeout: float = 60) -> None:
        """Until the service's web and its worker (relay running, consumers consuming) are ready."""
        self._wait_ready(f"{service}-web", self.url(service, "/readyz"), timeout)
        if service in self.worker_urls:
            self.wait_worker_ready(service, timeout)

    def wait_worker_ready(self, service: str, timeout: float = 60) -> None:
        self._wait_ready(f"{service}-worker", self.worker_url(service, "/readyz"), timeout)

    def _wait_ready(self, name: str, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        answer = "no answer"
        while time.monotonic() < deadline:
            proc = self.processes.get(name)
            if proc is not None and proc.poll() is not None:
                break  # it exited: waiting longer will not help
            try:
                got = requests.get(url, timeout=2)
                if got.status_code == 200:
                    return
                answer = f"{got.status_code} {got.text[:500]}"
            except requests.RequestException as exc:
                answer = repr(exc)
            time.sleep(0.2)
        log = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
        raise AssertionError(f"{name} never became ready ({answer}):\n{log}")


def start_platform(services: list[str], *, database_url: Callable[[str], str], bus_url: str,
                   logs: Path, data_key: str, extra_env: dict[str, str] | None = None,
                   web_workers: int = 2, worker_env: dict[str, str] | None = None) -> Platform:
    """Migrate, then start a gunicorn and a worker per service; wait until all are ready
    (each worker on a free port of its own for its probes and metrics: ``worker_urls``)."""
    env = dict(os.environ) | {
        "GRIDGOV_BUS_URL": bus_url, "GRIDGOV_DATA_KEY": data_key, "GRIDGOV_DATA_DIR": str(logs),
        "GRIDGOV_LOG_LEVEL": "INFO", "GRIDGOV_WEB_WORKERS": str(web_workers),
    } | (extra_env or {})
    env.pop("GRIDGOV_JWKS_URL", None)
    ports = {name: free_port() for name in services}
    env["GRIDGOV_IDENTITY_URL"] = f"http://127.0.0.1:{ports['identity']}"
    for name in services:
        env[f"GRIDGOV_{name.upper()}_DATABASE_URL"] = database_url(name)
        env[f"GRIDGOV_{name.upper()}_URL"] = f"http://127.0.0.1:{ports[name]}"
    platform = Platform(env=env, logs=logs, worker_env=worker_env or {})
    platform.gridgov("migrate", "all")
    try:
        for name in services:
            platform.urls[name] = f"http://127.0.0.1:{ports[name]}"
            platform.start_web(name)
            platform.start_worker(name)
        for name in services:
            platform.wait_ready(name)
    except BaseException:
        platform.stop()
        raise
    return platform
