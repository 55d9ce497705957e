"""CPU time of processes, read from /proc: what the platform, PostgreSQL and RabbitMQ spend.

Every figure here is user + system time (``utime`` + ``stime`` in
``/proc/<pid>/stat``), taken before and after a phase; the difference is the
CPU that phase cost, whatever the machine's speed or other load.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Stat:
    pid: int
    ppid: int
    comm: str
    seconds: float  # utime + stime + cutime + cstime


def _stat(pid: int) -> Stat | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None  # gone meanwhile
    comm = raw[raw.index("(") + 1:raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2:].split()
    # fields[1] is ppid; [11..14] utime, stime, cutime, cstime. The children's times
    # (cutime, cstime) count a process the tree has already reaped, e.g. a gunicorn
    # worker that was replaced, so that a tree's total never goes backwards.
    return Stat(pid, int(fields[1]), comm, sum(int(f) for f in fields[11:15]) / TICK)


def _stats() -> dict[int, Stat]:
    stats = (_stat(int(entry)) for entry in os.listdir("/proc") if entry.isdigit())
    return {stat.pid: stat for stat in stats if stat is not None}


def tree_seconds(roots: dict[str, Iterable[int]]) -> dict[str, float]:
    """CPU seconds of each named set of process trees: the roots and all their descendants
    (a gunicorn master and its workers, a ``gridgov worker``, a relay)."""
    stats = _stats()
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    out = {}
    for name, pids in roots.items():
        total, todo = 0.0, [pid for pid in pids if pid in stats]
        while todo:
            pid = todo.pop()
            total += stats[pid].seconds
            todo += children.get(pid, [])
        out[name] = total
    return out


def postgres_seconds(databases: Iterable[str]) -> dict[str, float]:
    """CPU seconds of the PostgreSQL backends connected to each of these databases (their
    process titles name the database). The server's shared processes (WAL writer,
    checkpointer, autovacuum) serve every database on the machine and are left out."""
    out = dict.fromkeys(databases, 0.0)
    for stat in _stats().values():
        if stat.comm != "postgres":
            continue
        try:
            title = Path(f"/proc/{stat.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        # "postgres: [cluster: ]user database host(port) state"
        words = title.split()
        if words[:1] == ["postgres:"]:
            for name in out.keys() & set(words[2:4]):
                out[name] += stat.seconds
    return out


def listening_pid(port: int) -> int | None:
    """The process listening on this TCP port (found by its socket's inode)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{cols[9]}]")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{entry}/fd/{fd}") in inodes:
                    return int(entry)
            except OSError:
                continue
    return None


def process_seconds(pid: int | None) -> float:
    """CPU seconds of one process (e.g. the RabbitMQ node, whose threads are all in it)."""
    stat = _stat(pid) if pid is not None else None
    return stat.seconds if stat else 0.0
