"""The database: one per service, SQLAlchemy 2, the same code on SQLite and PostgreSQL.

``Database.transaction()`` is the unit of work: everything inside commits
together (business rows, outbox rows, inbox rows) or not at all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import MetaData, create_engine, event, insert, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

OUTBOX_CHANNEL = "gridgov_outbox"
IDLE_PING_SECONDS = 2.0  # a pooled connection idle longer than this is pinged before use

naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    return MetaData(naming_convention=naming_convention)


def declarative_base():
    """A fresh ORM base per service: each service owns its own metadata."""

    class ServiceBase(DeclarativeBase):
        metadata = new_metadata()

    return ServiceBase


class Database:
    def __init__(self, url: str, *, pool_size: int = 10):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 30}
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
            # SQLite has one writer: take the write lock at BEGIN so two
            # transactions never deadlock upgrading read locks.
            event.listen(self.engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        else:
            url = url.replace("postgresql://", "postgresql+psycopg://", 1)
            self.engine = create_engine(
                url, pool_size=pool_size, max_overflow=pool_size, connect_args={"connect_timeout": 5},
            )
            # pool_pre_ping costs a round trip on every checkout; a connection that was in use
            # a moment ago is alive. Ping only those idle for a while (a restarted server, a
            # firewall that dropped them); a dead one is replaced before anyone sees it.
            event.listen(self.engine, "checkout", self._ping_if_idle)
            event.listen(self.engine, "checkin", _stamp_checkin)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Relays in this process wait on this; set whenever outbox rows commit.
        self.outbox_committed = threading.Event()
        event.listen(self.sessions, "before_commit", self._before_commit)
        event.listen(self.sessions, "after_commit", self._after_commit)
        event.listen(self.sessions, "after_soft_rollback", self._after_rollback)

    def _before_commit(self, session: Session) -> None:
        # Events recorded in this transaction (Outbox.record): one INSERT per outbox table.
        for table, rows in session.info.pop("outbox_rows", {}).items():
            session.execute(insert(table), rows)
        if session.info.get("outbox_dirty") and not self.is_sqlite:
            # Delivered at commit to relays in other processes (LISTEN).
            session.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))

    def _after_commit(self, session: Session) -> None:
        if session.info.pop("outbox_dirty", False):
            self.outbox_committed.set()

    def _after_rollback(self, session: Session, previous) -> None:
        if not previous.nested:  # a savepoint's rollback leaves the transaction's events alone
            session.info.pop("outbox_rows", None)  # recorded in what was rolled back: never written
            session.info.pop("outbox_dirty", None)

    def _ping_if_idle(self, dbapi_conn, record, proxy) -> None:
        returned = record.info.get("checked_in_at")
        if returned is not None and time.monotonic() - returned < IDLE_PING_SECONDS:
            return
        try:
            self.engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # noqa: BLE001 - any failure: the pool opens a fresh connection
            raise DisconnectionError(f"stale connection: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Unit of work: commit on success, roll back on any exception."""
        with self.sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def fetch(session: Session, model, ident, what: str | None = None):
    """The row with primary key ``ident``, or a 404 problem naming it."""
    from .problems import NotFound

    row = session.get(model, ident)
    if row is None:
        raise NotFound(what or model.__name__.lower(), ident)
    return row


def _stamp_checkin(dbapi_conn, record) -> None:
    record.info["checked_in_at"] = time.monotonic()


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()
