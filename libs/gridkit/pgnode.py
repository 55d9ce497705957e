"""A private PostgreSQL server for fault tests: stopped, crashed, restarted, and
given a streaming replica to promote, at will.

The machine's shared PostgreSQL (127.0.0.1:5432) serves everyone else's tests
and must never be stopped. A fault test makes its own cluster instead, with the
packaged binaries (``initdb``, ``pg_ctl``, ``pg_basebackup`` under
``/usr/lib/postgresql/<version>/bin``), its own data directory, port and
socket directory, trust authentication for ``root`` on 127.0.0.1::

    with PrivatePostgres.started() as primary:
        replica = primary.replica()         # pg_basebackup -R -X stream, started
        url = primary.url("intake")         # postgresql://root@127.0.0.1:<port>/intake
        primary.crash()                     # pg_ctl stop -m immediate: no checkpoint, like a kill
        primary.start()                     # crash recovery, same data, same port
        primary.stop(); replica.promote()   # a switchover

:func:`multi_host_url` writes a libpq URL naming several servers with
``target_session_attrs=read-write``: clients connect to whichever is the primary.

Run as root (the binaries refuse to; they are run as the ``postgres`` user, so
the directories are made in /tmp and given to that user) or as any other user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from .processes import free_port

USER = "root"  # the superuser initdb creates; trust on 127.0.0.1 (the machine's own is the same)


class PostgresError(RuntimeError):
    pass


def bindir() -> Path:
    """The newest packaged PostgreSQL's binaries (fails if there are none)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if not found:
        raise PostgresError("no PostgreSQL binaries under /usr/lib/postgresql/<version>/bin "
                            "(apt-get install postgresql)")
    return found[-1].parent


class PrivatePostgres:
    def __init__(self, base: Path | None = None, *, port: int | None = None):
        self.bin = bindir()
        # Not under pytest's tmp dirs: those are 0700 root, and the server runs as postgres.
        self.base = Path(base or tempfile.mkdtemp(prefix="gridgov-pg-", dir="/tmp"))
        self.data = self.base / "data"
        self.port = port or free_port()
        self._owner = _postgres_user()
        if self._owner is not None:
            self.base.chmod(0o755)
            os.chown(self.base, self._owner.pw_uid, self._owner.pw_gid)

    # -- what clients need ------------------------------------------------------------

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.url(database), autocommit=True, connect_timeout=5)

    def create_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def streaming(self) -> bool:
        """A standby is connected and streaming this primary's WAL (so a clean stop hands it
        every commit: the primary sends all its WAL to connected standbys before it exits)."""
        with self.connect() as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'").fetchone()
            return bool(row and row[0])

    def in_recovery(self) -> bool:
        """True on a standby (streaming from its primary), False on a primary."""
        with self.connect() as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            return bool(row and row[0])

    # -- life and death ---------------------------------------------------------------

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-locale")

    def start(self) -> None:
        """Start (or restart, after a stop or a crash) and return once it takes connections."""
        # fsync off: a test's server dies as a process, never as a machine, and the
        # operating system keeps what was written; crash recovery still replays the WAL.
        # A standby retries its primary every 200 ms (not 5 s) once that comes back.
        options = (f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c wal_retrieve_retry_interval=200ms")
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log_file),
                  "-o", options)

    def stop(self) -> None:
        """A clean shutdown (``-m fast``): sessions are ended, a checkpoint written, and a
        connected standby receives all the WAL before the server exits."""
        self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data))

    def crash(self) -> None:
        """``-m immediate``: every server process quits at once, nothing flushed or
        checkpointed; the next start recovers from the WAL, as after a kill."""
        self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data))

    def promote(self) -> None:
        """A standby becomes a primary (read-write) and stops following its old one."""
        self._run("pg_ctl", "promote", "-w", "-t", "60", "-D", str(self.data))

    def replica(self) -> PrivatePostgres:
        """A streaming replica of this server, on its own port, started."""
        standby = PrivatePostgres()
        self._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER,
                  "-D", str(standby.data), "-R", "-X", "stream", "-c", "fast")
        standby.start()
        return standby

    def running(self) -> bool:
        return subprocess.run(self._command("pg_ctl", "status", "-D", str(self.data)),
                              capture_output=True).returncode == 0

    def remove(self) -> None:
        if self.data.exists() and self.running():
            with contextlib.suppress(PostgresError):
                self.crash()
        shutil.rmtree(self.base, ignore_errors=True)

    @classmethod
    @contextlib.contextmanager
    def started(cls):
        server = cls()
        try:
            server.init()
            server.start()
            yield server
        finally:
            server.remove()

    # -- helpers ----------------------------------------------------------------------

    @property
    def log_file(self) -> Path:
        return self.base / "postgres.log"

    def _command(self, program: str, *args: str) -> list[str]:
        command = [str(self.bin / program), *args]
        if self._owner is not None:
            command = ["runuser", "-u", self._owner.pw_name, "--", *command]
        return command

    def _run(self, program: str, *args: str, timeout: float = 120) -> None:
        started = time.monotonic()
        done = subprocess.run(self._command(program, *args), capture_output=True, text=True, timeout=timeout,
                              cwd=self.base)
        if done.returncode != 0:
            raise PostgresError(f"{program} {' '.join(args)} failed after {time.monotonic() - started:.1f}s "
                                f"({done.returncode}):\n{done.stderr[-2000:]}\n{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"


def multi_host_url(servers: list[PrivatePostgres], database: str) -> str:
    """One URL naming every server (SQLAlchemy's form of libpq's multi-host
    connection string): a client connects to the first that answers as a primary."""
    hosts = "&".join(f"host={server.host}" for server in servers)
    return f"postgresql://{USER}@/{database}?{hosts}&target_session_attrs=read-write"


def _postgres_user() -> pwd.struct_passwd | None:
    """Who runs the binaries: ``postgres`` when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresError("running as root needs a postgres user to run PostgreSQL as") from None
