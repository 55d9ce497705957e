"""A private RabbitMQ node for fault tests: started, killed (-9) and restarted at will.

The machine's shared RabbitMQ (127.0.0.1:5672) serves everyone else's tests and
must never be stopped. A fault test runs its own node instead: the same
``rabbitmq-server`` and Erlang cookie, but its own node name, ports, config,
mnesia and log directories. Restarting it on the same mnesia directory keeps
durable exchanges, queues and persistent messages, as on a real server::

    with PrivateRabbit.started() as rabbit:
        url = rabbit.url                 # amqp://guest:guest@127.0.0.1:<port>//
        rabbit.kill()                    # SIGKILL to beam.smp, nothing flushed
        rabbit.start()                   # same data, same port

:class:`RabbitCluster` joins several such nodes into one cluster.

Run as root (the packaged wrapper drops to the ``rabbitmq`` user, so the
directories are made in /tmp and given to that user) or as ``rabbitmq``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

from .processes import free_port

SERVER = shutil.which("rabbitmq-server") or "/usr/sbin/rabbitmq-server"
CTL = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"


class RabbitError(RuntimeError):
    pass


class PrivateRabbit:
    def __init__(self, base: Path | None = None, *, name: str | None = None):
        self.node = f"{name or 'gridgov-faults-' + uuid.uuid4().hex[:8]}@localhost"
        # Not under pytest's tmp dirs: those are 0700 root, and the node runs as rabbitmq.
        self.base = Path(base or tempfile.mkdtemp(prefix="gridgov-rabbit-", dir="/tmp"))
        self.port = free_port()
        self.dist_port = free_port()
        self.pid: int | None = None
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
            "log.file.level = info\n")
        (self.base / "enabled_plugins").write_text("[].\n")
        self._give_to_rabbitmq(self.base)

    # -- what clients need ------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def pid_file(self) -> Path:
        return self.base / "mnesia" / f"{self.node}.pid"

    @property
    def log_file(self) -> Path:
        return self.base / "log" / f"{self.node}.log"

    def env(self) -> dict[str, str]:
        return os.environ | {
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
        }

    def ctl(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([CTL, "-q", "-n", self.node, *args], env=self.env(), capture_output=True,
                              text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RabbitError(f"rabbitmqctl {' '.join(args)} on {self.node} failed ({done.returncode}):\n"
                              f"{done.stderr[-2000:]}")
        return done

    # -- life and death ---------------------------------------------------------------

    def start(self, timeout: float = 90) -> None:
        """Start the node (detached) and return once it accepts AMQP connections.

        The listener opens at the end of the boot, and the node writes its pid file
        at the start: neither needs a ``rabbitmqctl`` call (each boots an Erlang VM,
        seconds on a loaded machine)."""
        self.pid_file.unlink(missing_ok=True)
        if not Path(SERVER).exists():
            raise RabbitError(f"no {SERVER}: a private node needs RabbitMQ installed (apt-get install rabbitmq-server)")
        done = subprocess.run([SERVER, "-detached"], env=self.env(), capture_output=True, text=True,
                              timeout=60)
        if done.returncode != 0:
            raise RabbitError(f"rabbitmq-server -detached failed:\n{done.stderr[-2000:]}")
        self._await_port(time.monotonic() + timeout)
        self.pid = int(self.pid_file.read_text().strip())

    def kill(self) -> None:
        """SIGKILL the node's beam.smp: no goodbye to clients, nothing flushed on purpose."""
        pid = self.pid or self._find_pid()
        if pid is None:
            raise RabbitError(f"{self.node} is not running")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _alive(pid):
            if time.monotonic() > deadline:
                raise RabbitError(f"beam.smp {pid} of {self.node} survived SIGKILL")
            time.sleep(0.05)
        self.pid = None
        self._kill_leftovers()

    def stop(self) -> None:
        """Stop the node for good: politely, then by force; leaves nothing running."""
        if self._find_pid() is not None:
            self.ctl("stop", timeout=60, check=False)
        pid = self._find_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.pid = None
        self._kill_leftovers()

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)

    @classmethod
    @contextlib.contextmanager
    def started(cls, base: Path | None = None, *, name: str | None = None, keep: bool = False):
        rabbit = cls(base, name=name)
        try:
            rabbit.start()
            yield rabbit
        finally:
            rabbit.stop()
            if not keep:
                rabbit.remove()

    # -- helpers ----------------------------------------------------------------------

    def _processes(self) -> list[int]:
        """Processes of this node only: those started with its unique node name in their
        environment (rabbitmq-server puts it there, not on the command line)."""
        marker = f"RABBITMQ_NODENAME={self.node}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if marker in environ.split(b"\0"):
                found.append(int(entry.name))
        return found

    def _find_pid(self) -> int | None:
        if self.pid is not None and _alive(self.pid):
            return self.pid
        for pid in self._processes():
            if _name(pid) == "beam.smp":
                return pid
        return None

    def _kill_leftovers(self) -> None:
        for pid in self._processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _await_port(self, deadline: float) -> None:
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RabbitError(f"{self.node} does not listen on {self.port}; see {self.log_file}:\n"
                                      f"{self._log_tail()}") from None
                time.sleep(0.1)

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    @staticmethod
    def _give_to_rabbitmq(path: Path) -> None:
        if os.geteuid() != 0:
            return
        try:
            user = pwd.getpwnam("rabbitmq")
        except KeyError:
            return
        path.chmod(0o755)
        for item in [path, *path.rglob("*")]:
            os.chown(item, user.pw_uid, user.pw_gid)



class RabbitCluster:
    """Private nodes (three by default) joined into one cluster, for tests that lose a node::

        with RabbitCluster.started() as cluster:
            cluster.url                       # every node's URL, ";"-separated (kombu's failover list)
            leader = cluster.leaders()["dispatch.petitions"]
            cluster.node(leader).kill()       # SIGKILL; the others elect new leaders

    Each node is a :class:`PrivateRabbit` (its own name, ports, mnesia and log
    directories, the packaged Erlang cookie); the second and later ones are joined
    to the first with ``rabbitmqctl join_cluster``. Quorum queues are declared on
    the node the declaring client is connected to, i.e. the first URL of the list
    while it is up.
    """

    def __init__(self, size: int = 3, *, name: str | None = None):
        prefix = name or f"gridgov-cluster-{uuid.uuid4().hex[:8]}"
        self.nodes = [PrivateRabbit(name=f"{prefix}-{i}") for i in range(1, size + 1)]

    @property
    def url(self) -> str:
        return ";".join(node.url for node in self.nodes)

    def node(self, name: str) -> PrivateRabbit:
        return next(node for node in self.nodes if node.node == name)

    def running(self) -> list[PrivateRabbit]:
        return [node for node in self.nodes if node._find_pid() is not None]

    def start(self) -> None:
        """Boot every node at once, then join the others to the first, two at a time."""
        _together([node.start for node in self.nodes])
        seed, joining = self.nodes[0], threading.Lock()

        def join(node: PrivateRabbit) -> None:
            node.ctl("stop_app")
            with joining:  # one membership change at a time
                node.ctl("join_cluster", seed.node)
            node.ctl("start_app")

        _together([functools.partial(join, node) for node in self.nodes[1:]])

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """``rabbitmqctl`` against any running node."""
        node = next(iter(self.running()), None)
        if node is None:
            raise RabbitError("no node of the cluster is running")
        return node.ctl(*args, timeout=timeout)

    def leaders(self, vhost: str = "/") -> dict[str, str]:
        """Each queue's leader node (quorum queues; a classic queue's home node)."""
        done = self.ctl("list_queues", "-p", vhost, "name", "leader", "--formatter", "json")
        return {q["name"]: q["leader"] for q in json.loads(done.stdout or "[]")}

    def stop(self) -> None:
        """SIGKILL every node: the cluster is thrown away, no need to stop politely."""
        for node in self.nodes:
            with contextlib.suppress(RabbitError):
                node.kill()
            node._kill_leftovers()

    def remove(self) -> None:
        for node in self.nodes:
            node.remove()

    @classmethod
    @contextlib.contextmanager
    def started(cls, size: int = 3, *, name: str | None = None):
        cluster = cls(size, name=name)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()
            cluster.remove()


def _together(calls: list) -> None:
    """Run ``calls`` in threads at once; raise the first failure once all are done."""
    failures: list[BaseException] = []

    def run(call) -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
