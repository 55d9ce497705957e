"""Rows written at commit (gridkit.db.insert_at_commit), on PostgreSQL and on SQLite."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import JSON, Column, ForeignKey, Integer, String, event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from gridkit.db import Database, declarative_base, insert_at_commit

Base = declarative_base()


class Parcel(Base):
    __tablename__ = "parcels"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    label = Column(String(50), nullable=False)
    kind = Column(String(10), nullable=False, default="plain")  # a Python default
    token = Column(String(36), nullable=False, default=lambda: str(uuid.uuid4()))
    extra = Column(JSON)  # a type with bind processing


class Line(Base):
    __tablename__ = "lines"
    id = Column(Integer, primary_key=True, autoincrement=True)
    parcel_id = Column(String(36), ForeignKey("parcels.id"), nullable=False)
    text = Column(String(50), nullable=False)


class Tag(Base):
    """An ORM object that refers to a parcel written at commit."""

    __tablename__ = "tags"
    id = Column(Integer, primary_key=True)
    parcel_id = Column(String(36), ForeignKey("parcels.id"))


@pytest.fixture(params=["postgres", "sqlite"])
def database(request, tmp_path):
    if request.param == "postgres":
        url = request.getfixturevalue("fresh_pg_database")("commitrows")
    else:
        url = f"sqlite:///{tmp_path / 'commitrows.db'}"
    database = Database(url)
    Base.metadata.create_all(database.engine)
    yield database
    database.dispose()


def count(database: Database, model) -> int:
    with database.sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_rows_are_written_at_commit_in_order_with_defaults_and_types(database):
    with database.transaction() as session:
        insert_at_commit(session, Parcel.__table__, {"id": "p1", "label": "a", "extra": {"floors": 6}})
        insert_at_commit(session, Line.__table__, {"parcel_id": "p1", "text": "first"})
        insert_at_commit(session, Line.__table__, {"parcel_id": "p1", "text": "second"})
        insert_at_commit(session, Parcel.__table__, {"id": "p2", "label": "b", "kind": "urgent"})
        assert session.scalar(select(func.count()).select_from(Parcel)) == 0  # not before the commit

    with database.sessions() as session:
        parcels = {p.id: p for p in session.scalars(select(Parcel))}
        lines = session.scalars(select(Line.text).order_by(Line.id)).all()
    assert parcels["p1"].kind == "plain" and parcels["p2"].kind == "urgent"
    assert parcels["p1"].extra == {"floors": 6} and parcels["p2"].extra is None
    assert len({parcels["p1"].token, parcels["p2"].token}) == 2  # a callable default, per row
    assert lines == ["first", "second"]


def test_a_rolled_back_transaction_writes_none_of_them(database):
    with pytest.raises(RuntimeError), database.transaction() as session:
        insert_at_commit(session, Parcel.__table__, {"id": "p1", "label": "a"})
        raise RuntimeError("the request failed")

    with database.transaction() as session:
        insert_at_commit(session, Parcel.__table__, {"id": "p2", "label": "b"})

    with database.sessions() as session:
        assert session.scalars(select(Parcel.id)).all() == ["p2"]


def test_pending_changes_of_the_session_may_refer_to_them(database):
    with database.transaction() as session:
        session.add(Tag(id=1))
        session.flush()
    with database.transaction() as session:
        tag = session.get(Tag, 1)  # read first, as intake reads the photos it attaches
        insert_at_commit(session, Parcel.__table__, {"id": "p1", "label": "a"})
        tag.parcel_id = "p1"

    with database.sessions() as session:
        assert session.get(Tag, 1).parcel_id == "p1"


def test_a_broken_row_fails_the_commit_as_an_integrity_error_and_leaves_nothing(database):
    with pytest.raises(IntegrityError), database.transaction() as session:
        insert_at_commit(session, Parcel.__table__, {"id": "p1", "label": "a"})
        insert_at_commit(session, Line.__table__, {"parcel_id": "nowhere", "text": "orphan"})

    assert count(database, Parcel) == 0 and count(database, Line) == 0
    with database.transaction() as session:  # the pooled connection is usable again
        insert_at_commit(session, Parcel.__table__, {"id": "p1", "label": "a"})
    assert count(database, Parcel) == 1


def test_more_rows_than_one_statement_may_carry_are_split_and_all_written(database, monkeypatch):
    from gridkit import db as kit_db

    monkeypatch.setattr(kit_db, "MAX_PARAMETERS", 7)  # two lines' worth of parameters
    with database.transaction() as session:
        insert_at_commit(session, Parcel.__table__, {"id": "p1", "label": "a"})
        for i in range(9):
            insert_at_commit(session, Line.__table__, {"parcel_id": "p1", "text": f"line {i}"})

    with database.sessions() as session:
        lines = session.scalars(select(Line.text).order_by(Line.id)).all()
    assert lines == [f"line {i}" for i in range(9)]


def test_they_commit_or_fail_together_with_the_sessions_own_changes(database):
    with database.transaction() as session:
        session.add(Tag(id=1))
    with pytest.raises(IntegrityError), database.transaction() as session:
        insert_at_commit(session, Parcel.__table__, {"id": "p1", "label": "a"})
        session.add(Tag(id=1))  # flushed after the rows, and refused: the rows must go too

    assert count(database, Parcel) == 0


def test_rows_split_over_statements_commit_or_fail_together(database, monkeypatch):
    from gridkit import db as kit_db

    monkeypatch.setattr(kit_db, "MAX_PARAMETERS", 7)
    with pytest.raises(IntegrityError), database.transaction() as session:
        insert_at_commit(session, Parcel.__table__, {"id": "p1", "label": "a"})
        for i in range(9):
            insert_at_commit(session, Line.__table__, {"parcel_id": "p1", "text": f"line {i}"})
        insert_at_commit(session, Line.__table__, {"parcel_id": "nowhere", "text": "orphan"})  # the last statement

    assert count(database, Parcel) == 0 and count(database, Line) == 0


def test_a_transaction_of_queued_rows_alone_skips_the_sessions_commit(fresh_pg_database):
    database = Database(fresh_pg_database("commitrows"))
    Base.metadata.create_all(database.engine)
    begun: list[object] = []
    event.listen(database.sessions, "after_transaction_create", lambda session, transaction: begun.append(transaction))
    try:
        with database.transaction() as session:
            insert_at_commit(session, Parcel.__table__, {"id": "p1", "label": "a"})
        assert begun == []  # no SessionTransaction …
        assert count(database, Parcel) == 1  # … and written

        # A service's own commit hook expects the session's commit: then it runs, once.
        hooked: list[object] = []
        event.listen(database.sessions, "before_commit", hooked.append)
        with database.transaction() as session:
            insert_at_commit(session, Parcel.__table__, {"id": "p2", "label": "b"})
        assert len(hooked) == 1 and begun
        assert count(database, Parcel) == 2
    finally:
        database.dispose()


def test_a_savepoint_released_on_the_way_is_not_the_commit(database):
    """SQLAlchemy calls its commit hooks when a savepoint is released too: rows queued
    before it wait for the transaction's own commit, on the transaction's connection (they
    may refer to rows it added, which no other connection sees yet)."""
    with database.transaction() as session:
        with session.begin_nested():
            session.add(Parcel(id="p9", label="made in a savepoint"))
        insert_at_commit(session, Line.__table__, {"parcel_id": "p9", "text": "after it"})
    assert count(database, Line) == 1
