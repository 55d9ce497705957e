"""The audit trail: every read of someone's personal data by staff, in the service that holds it.

Each service's database has the kit's ``audit_trail`` table (added by
``gridkit.db.declarative_base``). A route that shows staff a person's personal
data (an unmasked phone, a name, an address, a petition's contact) records who
read whose data, what, when and why, in the same transaction as the read::

    with runtime().db.transaction() as session:
        petition = ...
        audit.record(session, principal, "read_contact", subject_id=petition.reporter_id,
                     resource=f"petition:{petition.id}", reason=query.get("reason"))

The read commits with its trail row or not at all. People holding the
``auditor`` role read the trail of every service at ``GET /audit``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import g
from marshmallow import fields, validate
from sqlalchemy import Column, DateTime, Index, MetaData, String, Table, insert, select
from sqlalchemy.orm import Session

from .auth import Principal, current_principal, require_roles
from .db import METADATA, insert_at_commit
from .outbox import ID
from .pagination import Cursor, RowId
from .schemas import Schema

TABLE = "audit_trail"
READER_ROLES = ("auditor",)


def table(metadata: MetaData) -> Table:
    """The kit's table in every service's database (added by ``gridkit.db.declarative_base``)."""
    return Table(
        TABLE, metadata,
        Column("id", ID, primary_key=True, autoincrement=True),
        Column("at", DateTime(timezone=True), nullable=False),
        Column("actor_id", String(64), nullable=False),
        Column("actor_roles", String(200), nullable=False),
        Column("action", String(64), nullable=False),
        Column("subject_id", String(64)),  # whose personal data; null when not one person's
        Column("resource", String(200)),
        Column("reason", String(200)),
        Column("request_id", String(64)),
        Index("ix_audit_trail_subject_id", "subject_id", "id"),
        Index("ix_audit_trail_actor_id", "actor_id", "id"),
    )


def record(session: Session, actor: Principal, action: str, *, subject_id: str | None,
           resource: str | None = None, reason: str | None = None) -> None:
    """One line of the trail, written with the caller's transaction."""
    session.execute(insert(session.info[METADATA].tables[TABLE]).values(
        _line_row(actor, action, subject_id, resource, reason)))


def record_at_commit(session: Session, actor: Principal, action: str, *, subject_id: str | None,
                     resource: str | None = None, reason: str | None = None) -> None:
    """:func:`record`, the line written when the transaction commits, with the other lines
    and rows queued for it in one statement (a page of fifty petitions read by an admin
    is one INSERT, not fifty). Same guarantee: the read commits with its lines or not at all."""
    insert_at_commit(session, session.info[METADATA].tables[TABLE],
                     _line_row(actor, action, subject_id, resource, reason))


def _line_row(actor: Principal, action: str, subject_id: str | None, resource: str | None,
              reason: str | None) -> dict:
    return {"at": datetime.now(UTC), "actor_id": actor.subject[:64],
            "actor_roles": ",".join(sorted({grant.role for grant in actor.grants}))[:200],
            "action": action[:64], "subject_id": subject_id[:64] if subject_id else None,
            "resource": resource[:200] if resource else None, "reason": reason[:200] if reason else None,
            "request_id": (g.get("request_id") if g else None)}


# --- reading the trail ----------------------------------------------------------------------

TRAIL = Cursor(RowId())  # newest first: the last line's id

class TrailQuery(Schema):
    subject = fields.String(validate=validate.Length(1, 64), metadata={"description": "Whose data was read"})
    actor = fields.String(validate=validate.Length(1, 64), metadata={"description": "Who read it"})
    action = fields.String(validate=validate.Length(1, 64))
    cursor = TRAIL.field()
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 500))


class TrailLine(Schema):
    id = fields.Integer()
    at = fields.DateTime()
    actor_id = fields.String()
    actor_roles = fields.List(fields.String())
    action = fields.String()
    subject_id = fields.String(allow_none=True)
    resource = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    request_id = fields.String(allow_none=True)


class TrailPage(Schema):
    items = fields.List(fields.Nested(TrailLine))
    next_cursor = fields.String(allow_none=True)


def blueprint():
    from .web import Blueprint

    blp = Blueprint("audit", __name__, description="The audit trail of personal data read by staff")

    @blp.get("/audit")
    @require_roles(*READER_ROLES)
    @blp.arguments(TrailQuery, location="query")
    @blp.response(200, TrailPage)
    def read_trail(query):
        """Who read whose personal data in this service, newest first (auditors)."""
        current_principal()
        from .service import runtime

        rt = runtime()
        t = rt.spec.base.metadata.tables[TABLE]
        stmt = select(t).order_by(t.c.id.desc()).limit(query["limit"] + 1)
        for name, column in (("subject", t.c.subject_id), ("actor", t.c.actor_id), ("action", t.c.action)):
            if name in query:
                stmt = stmt.where(column == query[name])
        if query.get("cursor"):
            stmt = stmt.where(t.c.id < query["cursor"][0])
        with rt.db.transaction() as session:
            rows = session.execute(stmt).mappings().all()
        more = len(rows) > query["limit"]
        rows = rows[:query["limit"]]
        return {"items": [_line(row) for row in rows],
                "next_cursor": TRAIL.encode(rows[-1]["id"]) if more else None}

    return blp


def _line(row: Any) -> dict:
    at = row["at"]
    return dict(row) | {"at": at if at.tzinfo else at.replace(tzinfo=UTC),
                        "actor_roles": [r for r in row["actor_roles"].split(",") if r]}
