"""Two tiny services for the bus tests: ``ledgertest`` records entries and
publishes ``ledgertest.entry.recorded.v1`` through its outbox; ``effectstest``
consumes it and applies an effect per event id, counting how many times it
was applied, so a double effect shows up as ``applied == 2``.
"""

from __future__ import annotations

from pathlib import Path

from marshmallow import Schema, fields
from sqlalchemy import Integer, String, func, select, update
from sqlalchemy.orm import Mapped, mapped_column

from gridkit.consumer import Subscriptions
from gridkit.db import Database, declarative_base
from gridkit.events import Catalogue
from gridkit.outbox import Inbox, Outbox
from gridkit.service import ServiceSpec

HERE = Path(__file__).resolve().parent


class EntrySchema(Schema):
    entry_id = fields.Integer(required=True)
    memo = fields.String(required=True)
    amount = fields.Integer(required=True)


catalogue = Catalogue("ledgertest")
ENTRY_RECORDED = catalogue.declare("ledgertest.entry.recorded", version=1, schema=EntrySchema,
                                   description="An entry was written to the test ledger.")

# -- the producer ---------------------------------------------------------------

LedgerBase = declarative_base()
ledger_outbox = Outbox(LedgerBase.metadata)
ledger_inbox = Inbox(LedgerBase.metadata)


class Entry(LedgerBase):
    __tablename__ = "entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    memo: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(Integer)


def record_entry(session, memo: str = "entry", amount: int = 1) -> str:
    """The business change and its event, in the caller's transaction; returns the event id."""
    entry = Entry(memo=memo, amount=amount)
    session.add(entry)
    session.flush()
    envelope = ledger_outbox.record(session, ENTRY_RECORDED,
                                    {"entry_id": entry.id, "memo": memo, "amount": amount},
                                    subject=str(entry.id))
    return envelope.id


def record_entries(db: Database, n: int, *, memo: str = "entry", per_transaction: int = 50) -> list[str]:
    ids: list[str] = []
    while len(ids) < n:
        with db.transaction() as session:
            for _ in range(min(per_transaction, n - len(ids))):
                ids.append(record_entry(session, memo))
    return ids


def outbox_status(db: Database) -> dict[str, int]:
    t = ledger_outbox.table
    with db.engine.connect() as conn:
        return dict(conn.execute(select(t.c.status, func.count()).group_by(t.c.status)).all())


def reset_outbox_to_pending(db: Database) -> int:
    """As if no row had ever been confirmed: the relay publishes everything again."""
    t = ledger_outbox.table
    with db.engine.begin() as conn:
        return conn.execute(update(t).values(status="pending", sent_at=None)).rowcount


ledger_spec = ServiceSpec(
    name="ledgertest", description="Bus test producer", base=LedgerBase, catalogue=catalogue,
    blueprints=lambda: [], migrations=HERE / "migrations" / "ledger", port=0,
    outbox=ledger_outbox, inbox=ledger_inbox,
)

# -- the consumer ---------------------------------------------------------------

EffectsBase = declarative_base()
effects_outbox = Outbox(EffectsBase.metadata)
effects_inbox = Inbox(EffectsBase.metadata)


class Effect(EffectsBase):
    __tablename__ = "effects"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    entry_id: Mapped[int] = mapped_column(Integer)
    applied: Mapped[int] = mapped_column(Integer)


# Entries whose memo is here make the handler raise (a bug, until the test "fixes" it).
FAILING_MEMOS: set[str] = set()

subscriptions = Subscriptions("effectstest")


@subscriptions.on(ENTRY_RECORDED, purpose="entries")
def apply_entry(session, event) -> None:
    if event.data["memo"] in FAILING_MEMOS:
        raise RuntimeError(f"cannot apply entries with memo {event.data['memo']!r}")
    effect = session.get(Effect, event.id)
    if effect is None:
        session.add(Effect(event_id=event.id, entry_id=event.data["entry_id"], applied=1))
    else:
        effect.applied += 1  # only ever reached if the inbox failed to de-duplicate


QUEUE = "effectstest.entries"

effects_spec = ServiceSpec(
    name="effectstest", description="Bus test consumer", base=EffectsBase, catalogue=Catalogue("effectstest"),
    blueprints=lambda: [], migrations=HERE / "migrations" / "effects", port=0,
    outbox=effects_outbox, inbox=effects_inbox, subscriptions=subscriptions,
)


def applied_counts(db: Database) -> dict[str, int]:
    with db.engine.connect() as conn:
        return dict(conn.execute(select(Effect.event_id, Effect.applied)).all())


def reconcile(ledger_db: Database, effects_db: Database, *, quiet: bool = False) -> dict[str, int]:
    """Every recorded event against every applied effect: lost and duplicated must both be 0."""
    t = ledger_outbox.table
    with ledger_db.engine.connect() as conn:
        recorded = set(conn.execute(select(t.c.event_id)).scalars())
    applied = applied_counts(effects_db)
    report = {
        "recorded": len(recorded),
        "applied": len(applied),
        "lost": len(recorded - applied.keys()),
        "duplicated": sum(n - 1 for n in applied.values() if n > 1),
        "unexpected": len(applied.keys() - recorded),
    }
    if not quiet:
        print("reconcile:", report)
    return report
