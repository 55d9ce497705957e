"""The database: one per service, SQLAlchemy 2, the same code on SQLite and PostgreSQL.

``Database.transaction()`` is the unit of work: everything inside commits
together (business rows, outbox rows, inbox rows) or not at all.

:func:`insert_at_commit` is the cheap way to add rows that nothing reads back
before the commit (a new petition, its first timeline line, the events a
transaction records): they are written when the transaction commits, on
PostgreSQL all of them (and the outbox NOTIFY) as one statement through
psycopg's own cursor. Through the ORM or Core each such statement cost about
five times the client CPU of the statement itself, which on the busiest routes
was most of the request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from psycopg.pq import ConnStatus, ExecStatus, TransactionStatus
from sqlalchemy import Column, Executable, MetaData, Table, create_engine, event, insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

log = logging.getLogger(__name__)

OUTBOX_CHANNEL = "gridgov_outbox"
METADATA = "gridgov.metadata"  # session.info key: the service's metadata (the kit's tables)
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
    """A fresh ORM base per service: each service owns its own metadata, which holds
    the kit's tables every service has (access revocations, the audit trail)."""
    from . import access, audit

    class ServiceBase(DeclarativeBase):
        metadata = new_metadata()

    access.table(ServiceBase.metadata)
    audit.table(ServiceBase.metadata)
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
            self.engine.dialect.do_rollback = _rollback_keeping_prepared  # type: ignore[method-assign]
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._plans: dict[tuple, _InsertPlan] = {}
        # Relays in this process wait on this; set whenever outbox rows commit.
        self.outbox_committed = threading.Event()
        event.listen(self.sessions, "before_commit", self._before_commit)
        event.listen(self.sessions, "after_begin", self._connected)
        event.listen(self.sessions, "after_commit", self._after_commit)
        event.listen(self.sessions, "after_soft_rollback", self._after_rollback)

    def _before_commit(self, session: Session) -> None:
        if session.in_nested_transaction():
            return  # a savepoint released (SQLAlchemy calls it a commit): the transaction goes on
        # Runs before the unit of work's last flush: rows written here may be referred to
        # by the session's pending changes (a photo attached to the new petition).
        batches = session.info.pop(COMMIT_ROWS, None) or {}
        # Events were recorded (Outbox.record): relays in other processes LISTEN for this.
        notify = bool(session.info.get("outbox_dirty")) and not self.is_sqlite
        if self.is_sqlite:
            with session.no_autoflush:  # pending changes go after these rows (see above)
                for table, rows in batches.items():
                    for group in _by_keys(rows).values():
                        session.execute(insert(table), group)
        elif batches or notify:
            self._write_raw(session, batches, notify)

    def _write_raw(self, session: Session, batches: dict[Table, list[dict]], notify: bool) -> None:
        """The commit's rows and NOTIFY through psycopg, as one statement (its INSERTs as
        data-modifying WITH clauses) however many tables they go to: the database
        parses, plans and answers once."""
        statements = list(self._statements(batches, notify))
        if not session.info.get(CONNECTED) and not (session.new or session.dirty or session.deleted):
            # These rows are the whole transaction: they go on a connection of their own,
            # not held by the session for nothing. One statement is atomic on its own (no
            # BEGIN and COMMIT round trips); several, more rows than one statement takes,
            # go in one transaction.
            raw = self.engine.raw_connection()
            try:
                self._execute(raw.driver_connection, statements, autocommit=len(statements) == 1)
                if len(statements) > 1:
                    raw.commit()
            finally:
                raw.close()
        else:
            self._execute(session.connection().connection.driver_connection, statements)

    def _execute(self, driver: Any, statements: list[tuple[str, list]], *, autocommit: bool = False) -> None:
        dbapi = self.engine.dialect.loaded_dbapi
        if autocommit:
            driver.autocommit = True
        try:
            with driver.cursor() as cursor:
                for sql, params in statements:
                    try:
                        cursor.execute(sql, params)
                    except dbapi.Error as exc:
                        # As SQLAlchemy would raise it (IntegrityError, OperationalError, …):
                        # callers and the web app's error handlers catch those.
                        raise DBAPIError.instance(sql, params, exc, dbapi.Error) from exc
        finally:
            if autocommit:
                driver.autocommit = False

    def _statements(self, batches: dict[Table, list[dict]], notify: bool) -> Iterator[tuple[str, list]]:
        parts: list[str] = []
        params: list = []
        for table, rows in batches.items():
            for keys, group in _by_keys(rows).items():
                plan = self._plans.get((table, keys))
                if plan is None:
                    plan = self._plans[(table, keys)] = _InsertPlan(table, keys, self.engine.dialect)
                step = max(1, MAX_PARAMETERS // plan.width)
                for i in range(0, len(group), step):
                    chunk = group[i:i + step]
                    if params and len(params) + len(chunk) * plan.width > MAX_PARAMETERS:
                        yield _together(parts), params
                        parts, params = [], []
                    parts.append(plan.sql(len(chunk)))
                    for row in chunk:
                        params.extend(plan.values(row))
        if notify:
            parts.append(f"SELECT pg_notify('{OUTBOX_CHANNEL}', '')")
        if parts:
            yield _together(parts), params

    def _connected(self, session: Session, transaction, connection) -> None:
        session.info[CONNECTED] = True  # the session's transaction holds a connection

    def _after_commit(self, session: Session) -> None:
        if session.in_nested_transaction():
            return  # a savepoint released: its connection and rows are the transaction's still
        session.info.pop(CONNECTED, None)
        if session.info.pop("outbox_dirty", False):
            self.outbox_committed.set()

    def _after_rollback(self, session: Session, previous) -> None:
        if not previous.nested:  # a savepoint's rollback leaves the transaction's rows alone
            session.info.pop(CONNECTED, None)
            session.info.pop(COMMIT_ROWS, None)  # added in what was rolled back: never written
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
                if self._nothing_begun(session):
                    # Nothing was queried or added: at most rows queued by insert_at_commit,
                    # which the commit hook writes on a connection of its own. The session's
                    # commit around that cost as much as the write on intake's busiest route.
                    self._before_commit(session)
                    self._after_commit(session)
                else:
                    session.commit()
            except BaseException:
                session.rollback()
                raise

    def _nothing_begun(self, session: Session) -> bool:
        # Only where the commit hooks are this class's own (a service may add its own, which
        # expect the session's commit) and write without the session (not on SQLite).
        return not session.in_transaction() and not self.is_sqlite \
            and len(session.dispatch.before_commit) == 1 and len(session.dispatch.after_commit) == 1

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def connect_arguments(self) -> dict[str, Any]:
        """What the driver's ``connect()`` takes for this database, every host of a
        multi-host URL included (for a connection of its own, outside the pool)."""
        _, kwargs = self.engine.dialect.create_connect_args(self.engine.url)
        arguments = dict(kwargs)
        arguments.pop("context", None)  # SQLAlchemy's adapters, for its own connections only
        return arguments | {"connect_timeout": 5}

    def dispose(self) -> None:
        self.engine.dispose()


_OK, _COMMAND_OK = ConnStatus.OK, ExecStatus.COMMAND_OK
_OPEN = (TransactionStatus.INTRANS, TransactionStatus.INERROR)


def _rollback_keeping_prepared(dbapi_connection) -> None:
    """Roll back without forgetting the connection's prepared statements.

    psycopg's ``rollback()`` deallocates every statement it prepared on the connection,
    in case the transaction created what they refer to. A service's transactions never
    change the schema (migrations run apart, on an engine of their own), and every
    read-only session ends in a rollback: in intake's web, the few reads a second
    (revocations, the catalogue) kept its hot statements from ever staying prepared,
    so PostgreSQL parsed and planned them again. Anything but a plain open transaction
    on a healthy connection takes psycopg's own way."""
    pgconn = dbapi_connection.pgconn
    if (pgconn.status == _OK and pgconn.transaction_status in _OPEN
            and getattr(dbapi_connection, "_pipeline", None) is None):
        result = pgconn.exec_(b"ROLLBACK")
        if result.status == _COMMAND_OK:
            return
    dbapi_connection.rollback()


COMMIT_ROWS = "gridkit.commit_rows"
CONNECTED = "gridkit.connected"
MAX_PARAMETERS = 30_000  # per statement (PostgreSQL's protocol allows 65 535)


def driver_rows(session: Session, sql: str, params: dict[str, Any]) -> list:
    """Run ``sql`` (psycopg's ``%(name)s`` parameters) in ``session``'s transaction through
    psycopg's own cursor, and return its rows as named tuples. PostgreSQL only: for the
    statements of a hot path, where SQLAlchemy's execution (Core or ORM) cost several
    times the client CPU of the statement itself; psycopg prepares a statement run
    often on a connection. Errors are raised as SQLAlchemy raises them (IntegrityError,
    OperationalError, …)."""
    from psycopg import Error
    from psycopg.rows import namedtuple_row

    driver: Any = session.connection().connection.driver_connection
    try:
        with driver.cursor(row_factory=namedtuple_row) as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []
    except Error as exc:
        raise DBAPIError.instance(sql, params, exc, Error) from exc


def insert_at_commit(session: Session, table: Table, row: dict) -> None:
    """Insert ``row`` into ``table`` when ``session`` commits (or never, if it rolls back).

    For new rows that nothing in the same transaction reads back: a query before the
    commit does not see them. They are written together, before the session flushes
    its own pending changes (so those may refer to them), and may refer to rows added
    before them. Each table's rows go in in the order they were added (grouped by
    which columns they give): an autoincrement id follows that order. Columns left
    out get their Python default, else the database's."""
    session.info.setdefault(COMMIT_ROWS, {}).setdefault(table, []).append(row)


def _by_keys(rows: list[dict]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    return groups


class _InsertPlan:
    """How to insert one set of keys into one table: the SQL for n rows, and each row's
    parameters, with Python-side defaults for the columns left out and the column
    types' bind processing (none for the plain types on psycopg)."""

    def __init__(self, table: Table, keys: tuple[str, ...], dialect):
        given = [table.c[key] for key in keys]
        defaulted = [c for c in table.c if c.key not in keys and c.default is not None]
        self.keys = keys
        self.defaults = [_default(c) for c in defaulted]
        self.processors = [_processor(c, dialect) for c in given + defaulted]
        self.processing = any(p is not None for p in self.processors)
        self.width = len(given) + len(defaulted)
        quote = dialect.identifier_preparer
        names = ", ".join(quote.format_column(c) for c in given + defaulted)
        self._head = f"INSERT INTO {quote.format_table(table)} ({names}) VALUES "
        self._row = "(" + ", ".join(["%s"] * self.width) + ")"

    def sql(self, rows: int) -> str:
        return self._head + ", ".join([self._row] * rows)

    def values(self, row: dict) -> list:
        values = [row[key] for key in self.keys] + [default() for default in self.defaults]
        if not self.processing:
            return values
        return [v if process is None or v is None else process(v)
                for v, process in zip(values, self.processors, strict=True)]


def _together(statements: list[str]) -> str:
    """One statement: all but the last as data-modifying WITH clauses (PostgreSQL runs
    every one of them; foreign keys between them are checked at the end)."""
    *first, last = statements
    if not first:
        return last
    return "WITH " + ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(first)) + " " + last


def _default(column: Column) -> Callable[[], Any]:
    default: Any = column.default
    if default.is_callable:
        return lambda: default.arg(None)  # SQLAlchemy wraps a plain function to take a context
    if default.is_scalar:
        return lambda: default.arg
    raise TypeError(f"{column.table.name}.{column.key}: give it explicitly (its default is SQL)")


def _processor(column: Column, dialect):
    return column.type.dialect_impl(dialect).bind_processor(dialect)


# SQLSTATEs that mean "not now", not "wrong": the server is shutting down or starting up
# (57P01-57P03), or this server is a standby that takes no writes (25006, a failover under way).
UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "25006"})


def unavailable(exc: BaseException) -> bool:
    """The database cannot be reached or cannot take writes right now (as opposed to a
    bug or bad data): the web answers 503, consumers requeue, loops wait and retry."""
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or _sqlstate(exc.orig) in UNAVAILABLE_STATES
    try:
        import psycopg
    except ImportError:  # pragma: no cover - SQLite-only installs
        return False
    # Raised by the driver outside SQLAlchemy (a connection opened by hand, a pool
    # connect that SQLAlchemy does not wrap: Engine.raw_connection).
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) \
        or (isinstance(exc, psycopg.Error) and _sqlstate(exc) in UNAVAILABLE_STATES)


def _sqlstate(exc: BaseException | None) -> str | None:
    return getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)


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


def delete_in_chunks(db: Database, statement: Executable, chunk: int) -> int:
    """Run ``statement``, a DELETE of at most ``chunk`` rows (the oldest), each time in a
    transaction of its own until it deletes fewer: short locks on a big backlog.
    Returns how many rows went."""
    deleted = 0
    while True:
        with db.engine.begin() as conn:
            n = conn.execute(statement).rowcount
        deleted += n
        if n < chunk:
            return deleted


def keep_tidy(stop: threading.Event, every: float, tidy: Callable[[], int], what: str, *,
              done: str = "deleted") -> None:
    """A worker's periodic loop: ``tidy()`` (deletes old rows, voids holds that timed out…,
    returns how many) at start and then every ``every`` seconds until ``stop``, logging
    "<what> <done>" when it did something. A failure is logged and tried again next
    time: the worker's real work goes on."""
    while True:
        try:
            if n := tidy():
                log.info("%s %s", what, done, extra={"rows": n})
        except Exception:  # noqa: BLE001 - housekeeping
            log.exception("%s: failed; trying again in %ss", what, every)
        if stop.wait(every):
            return
