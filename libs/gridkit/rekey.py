"""``gridgov rekey <service>``: re-seal what a service keeps sealed under the current data key.

After a rotation (the new key in ``GRIDGOV_DATA_KEY``, the old one in
``GRIDGOV_DATA_KEY_PREVIOUS``) every value the service declares (``ServiceSpec.sealed``)
that the current key did not seal is opened with the ring, sealed again and its blind
index recomputed; then the old key can go. It walks each table by primary key in
batches, each batch one transaction, so it runs beside the service and may be stopped
and run again: what is done stays done, and a second run changes nothing. A row is
written only if it still holds the value read (compare and set): a value changed
meanwhile was sealed under the current key by whoever changed it.

A value that opens under no key of the ring is refused: named (table, column, row), left
as it is, and reported, so the command can end with an exit code that says so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import CursorResult, Table, Update, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .crypto import VERSION, DataKey, Sealed, Unopenable


@dataclass
class Outcome:
    """One declared column: how many values were sealed again, and which were refused."""

    sealed: Sealed
    resealed: int = 0
    refused: list[str] = field(default_factory=list)


def rekey(runtime, *, batch: int = 500) -> Iterator[Outcome]:
    """Each declared column of ``runtime``'s service, re-sealed; yields as each is done."""
    for sealed in runtime.spec.sealed:
        yield _rekey(runtime, sealed, batch)


def _rekey(runtime, sealed: Sealed, batch: int) -> Outcome:
    key = DataKey.from_settings(runtime.settings, context=sealed.context)
    table: Table = runtime.spec.base.metadata.tables[sealed.table]
    column = table.c[sealed.column]
    pk = list(table.primary_key.columns)
    query = select(*dict.fromkeys([*pk, *(table.c[name] for name in sealed.columns)])).where(
        column.is_not(None), *(table.c[name] == value for name, value in sealed.where.items()))
    if sealed.path is None:
        # What the current key sealed is not even read: a second run reads nothing.
        query = query.where(~column.startswith(f"{VERSION}:{key.kid}:", autoescape=True))
    outcome = Outcome(sealed)
    last: tuple | None = None
    while True:
        page = query.order_by(*pk).limit(batch)
        if last is not None:
            page = page.where(tuple_(*pk) > tuple_(*last))
        with runtime.db.transaction() as session:
            rows = [row._mapping for row in session.execute(page)]
            for row in rows:
                _reseal(session, table, sealed, key, row, outcome)
        if len(rows) < batch:
            return outcome
        last = tuple(rows[-1][c.name] for c in pk)


def _reseal(session: Session, table: Table, sealed: Sealed, key: DataKey, row, outcome: Outcome) -> None:
    stored = row[sealed.column]
    purpose = sealed.purpose.format_map(row)
    document = json.loads(stored) if sealed.path else None
    token = _get(document, sealed.path) if sealed.path else stored
    if token is None or key.is_current(token):
        return
    at = ", ".join(f"{c.name}={row[c.name]}" for c in table.primary_key.columns)
    try:
        value = key.open(token, purpose)
    except Unopenable as exc:
        outcome.refused.append(f"{sealed.label} of the row {at}: {exc}")
        return
    fresh = key.seal(value, purpose)
    changes = {sealed.column: _put(document, sealed.path, fresh) if sealed.path else fresh}
    statement = update(table).where(*(c == row[c.name] for c in table.primary_key.columns),
                                    table.c[sealed.column] == stored)
    if not sealed.index:
        outcome.resealed += _changed(session, statement.values(changes))
        return
    changes[sealed.index] = key.index(value, purpose)
    try:
        with session.begin_nested():  # a unique index: one clash must not undo the batch
            outcome.resealed += _changed(session, statement.values(changes))
    except IntegrityError:
        outcome.refused.append(f"{sealed.label} of the row {at}: its new {sealed.index} is another row's "
                               "(the same value twice, written during the rotation)")


def _changed(session: Session, statement: Update) -> int:
    return cast(CursorResult, session.execute(statement)).rowcount


def _get(document: Any, path: str) -> Any:
    for part in path.split("."):
        document = document.get(part) if isinstance(document, dict) else None
    return document


def _put(document: Any, path: str, value: str) -> str:
    *parents, last = path.split(".")
    inner = document
    for part in parents:
        inner = inner[part]
    inner[last] = value
    # As the outbox writes its bodies (gridkit.outbox.Outbox.record).
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))
