"""The ledger's use cases: open an account, move points, resolve a hold, sweep the
holds that timed out, read balances and statements. Every door (HTTP, the award
consumers, the supermarkets' redemptions, the worker's sweep) calls these.

Each runs in the caller's transaction (``session``) and writes the transfer, its two
statement lines, the accounts' new totals and its event together.

No overdraft under any concurrency: the two accounts' rows are locked in the order
of their ids (``SELECT … ORDER BY id FOR NO KEY UPDATE``) before their totals are
read, checked and written. Two transfers that share an account take turns on it;
transfers that share none do not wait for each other; a fixed order means no two
transactions ever wait for each other in a circle (no deadlock). ``NO KEY UPDATE``
because inserting a transfer or an entry checks its foreign keys to the accounts
with ``KEY SHARE``, which ``FOR UPDATE`` would conflict with. The totals are written
from what was read under the lock, and CHECK constraints on the table refuse an
overdraft even from a path that forgot the rule. docs/points.md says why this over
a guarded UPDATE or SERIALIZABLE.

A hold (pending transfer) is resolved once: a post or void first deletes its row in
``open_holds`` (and locks it doing so); whoever comes second finds it gone. A unique
``pending_id`` on transfers backs that up. Holds are taken before accounts on every
path, so the two kinds of lock never wait in a circle either.

Idempotency: the client chooses the transfer id. The same id with the same fields is
the original transfer (nothing moves again); with a difference it is refused, naming
the fields. Two requests with one id racing each other: the second's insert fails on
the primary key when it commits; :func:`submit` runs it again, and it then finds the
first.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import Counter
from sqlalchemy import bindparam, case, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gridkit.db import Database, driver_rows, insert_at_commit, keep_tidy

from . import domain
from .domain import PENDING, POST, VOID, Refused, Request, Shape, Totals
from .events import TRANSFER_PENDING, TRANSFER_POSTED, TRANSFER_VOIDED
from .tables import Account, Entry, OpenHold, Transfer, aware, outbox, utcnow

log = logging.getLogger(__name__)

A, T, E, H = Account.__table__, Transfer.__table__, Entry.__table__, OpenHold.__table__
TOTALS = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")

# Bounded labels: the phase, and what became of the request.
TRANSFERS = Counter("gridgov_points_transfers_total", "Transfer requests by phase and outcome",
                    ["phase", "outcome"])
# Every series from the start at zero, each child looked up once (labels() takes a lock).
COUNTED = {(phase, outcome): TRANSFERS.labels(phase, outcome)
           for phase in domain.PHASES for outcome in ("created", "replayed", "refused")}

# The two statements every transfer runs before its commit: lock both accounts (and see
# whether the transfer's id or source is taken), then write both accounts' totals. On
# PostgreSQL as SQL through psycopg's cursor (gridkit.db.driver_rows): through SQLAlchemy
# they cost several times the client CPU of running them. On SQLite the same, built once
# with SQLAlchemy (its writer lock serialises transactions: FOR UPDATE is left out).
PG_LOCK = ("SELECT " + ", ".join(f"a.{c.name}" for c in A.c)
           + ", (SELECT t.id FROM transfers t WHERE t.id = %(id)s) AS taken"
           + ", (SELECT t.id FROM transfers t WHERE t.source = %(source)s) AS used"
           + " FROM accounts a WHERE a.id IN (%(a)s, %(b)s) ORDER BY a.id FOR NO KEY UPDATE OF a")
PG_WRITE = ("UPDATE accounts SET "
            + ", ".join(f"{name} = CASE WHEN id = %(a)s THEN %(a_{name})s ELSE %(b_{name})s END" for name in TOTALS)
            + " WHERE id IN (%(a)s, %(b)s)")
LOCK = select(A, select(T.c.id).where(T.c.id == bindparam("id")).scalar_subquery().label("taken"),
              select(T.c.id).where(T.c.source == bindparam("source")).scalar_subquery().label("used")) \
    .where(A.c.id.in_([bindparam("a"), bindparam("b")])).order_by(A.c.id).with_for_update(of=A, key_share=True)
WRITE = update(A).where(A.c.id.in_([bindparam("a"), bindparam("b")])).values(
    {name: case((A.c.id == bindparam("a"), bindparam(f"a_{name}")), else_=bindparam(f"b_{name}")) for name in TOTALS})


def _lock(session: Session, a: int, b: int, transfer_id: str, source: str | None = None) -> list:
    """Accounts ``a`` and ``b`` (those that exist), locked in id order, each row with
    ``taken`` (the transfer id exists) and ``used`` (a transfer has this source)."""
    params = {"a": a, "b": b, "id": transfer_id, "source": source}
    if session.bind.dialect.name == "postgresql":  # type: ignore[union-attr]
        return driver_rows(session, PG_LOCK, params)
    return session.execute(LOCK, params).all()


def _write_totals(session: Session, a: int, after_a: Totals, b: int, after_b: Totals) -> None:
    params = {"a": a, "b": b} | {f"a_{name}": getattr(after_a, name) for name in TOTALS} \
        | {f"b_{name}": getattr(after_b, name) for name in TOTALS}
    if session.bind.dialect.name == "postgresql":  # type: ignore[union-attr]
        driver_rows(session, PG_WRITE, params)
    else:
        session.execute(WRITE, params)

# A hold that timed out is voided by the ledger with an id derived from the hold's:
# two sweeps (or a retried one) would write the same transfer.
EXPIRY_NAMESPACE = uuid.UUID("6f1d3c52-4d1e-4e8a-9a57-2b0f3c1d7e01")


@dataclass(frozen=True)
class Outcome:
    transfer: dict  # the transfer as stored (transfer_view)
    created: bool  # False: it existed already (a replay)


Authorize = Callable[[dict, dict], None]  # (debit account, credit account) → None, or raise NotPermitted

# Called in the transaction that posts or voids a hold, with the hold (a row) and its
# resolution (transfer_view): what was reserved beside the points (a redemption's
# stock) follows the hold's fate in the same transaction, exactly once, whoever
# resolved it (the holder, an admin, the sweep).
OnResolved = Callable[[Session, Any, dict], None]
ON_RESOLVED: list[OnResolved] = []


def anyone(debit: dict, credit: dict) -> None:
    """The ledger's own callers (consumers, the sweep) act for the platform."""


# --------------------------------------------------------------------------
# accounts
# --------------------------------------------------------------------------


def open_account(session: Session, *, kind: str, community: str, holder: str | None = None,
                 household: str | None = None, by: str | None = None) -> tuple[Account, bool]:
    """The account of ``holder`` of this kind in ``community``, opened if it is new.
    Idempotent by (community, kind, holder): (account, created)."""
    if kind not in domain.ACCOUNT_KINDS:
        raise domain.Invalid("kind", f"one of {', '.join(domain.ACCOUNT_KINDS)}")
    if (kind in domain.HOLDERS) != bool(holder):
        raise domain.Invalid("holder", f"required for a {kind} account" if kind in domain.HOLDERS
                             else f"a {kind} account is the community's own: no holder")
    if household and kind != domain.PERSON:
        raise domain.Invalid("household", "only a person's account counts towards a household")
    holder = holder or ""
    found = session.scalars(select(Account).where(Account.community == community, Account.kind == kind,
                                                  Account.holder == holder)).first()
    if found is not None:
        if household and found.household != household:
            raise Refused("exists-with-different-fields",
                          f"the {kind} account of {holder or community} exists with another household",
                          fields=["household"], account_id=found.id)
        return found, False
    debits_limited, credits_limited = domain.flags_for(kind)
    account = Account(kind=kind, community=community, holder=holder, household=household,
                      debits_must_not_exceed_credits=debits_limited, credits_must_not_exceed_debits=credits_limited,
                      debits_pending=0, debits_posted=0, credits_pending=0, credits_posted=0,
                      opened_at=utcnow(), opened_by=by)
    try:
        with session.begin_nested():  # two openers racing: the second finds the first's
            session.add(account)
    except IntegrityError:
        return open_account(session, kind=kind, community=community, holder=holder, household=household, by=by)
    return account, True


def account_view(row) -> dict:
    """An account as its owner and admins see it (from an Account or a Core row)."""
    totals = totals_of(row)
    return {"id": row.id, "kind": row.kind, "community": row.community, "holder": row.holder or None,
            "household": row.household, "balance": totals.balance, "available": totals.available,
            "held": totals.debits_pending, "incoming": totals.credits_pending,
            "debits_posted": totals.debits_posted, "credits_posted": totals.credits_posted,
            "debits_must_not_exceed_credits": row.debits_must_not_exceed_credits,
            "credits_must_not_exceed_debits": row.credits_must_not_exceed_debits,
            "opened_at": aware(row.opened_at)}


def totals_of(row) -> Totals:
    return Totals(row.debits_pending, row.debits_posted, row.credits_pending, row.credits_posted,
                  bool(row.debits_must_not_exceed_credits), bool(row.credits_must_not_exceed_debits))


def household_total(session: Session, community: str, household: str) -> dict:
    """What a household has: its own account and its members' (people's accounts that
    count towards it), where the community pools points by household."""
    rows = session.execute(select(A).where(A.c.community == community, or_household(household))).all()
    totals = [totals_of(row) for row in rows]
    return {"community": community, "household": household, "accounts": [row.id for row in rows],
            "balance": sum(t.balance for t in totals), "available": sum(t.available for t in totals),
            "held": sum(t.debits_pending for t in totals)}


def or_household(household: str):
    return ((A.c.kind == domain.HOUSEHOLD) & (A.c.holder == household)) | (A.c.household == household)


def count_towards(session: Session, account_id: int, household: str | None) -> None:
    """A person's account counts towards ``household`` from now on: the resident was bound to
    it (grids) after the account was opened, in a community that pools points by household."""
    session.execute(update(A).where(A.c.id == account_id, A.c.kind == domain.PERSON).values(household=household))


# --------------------------------------------------------------------------
# transfers
# --------------------------------------------------------------------------


def submit(db: Database, request: Request, *, by: str | None, authorize: Authorize = anyone,
           now: datetime | None = None) -> Outcome:
    """:func:`transfer` in a transaction of its own, run again once when a request with
    the same id (or source) committed in between: then it finds that one."""
    for attempt in (1, 2):
        try:
            with db.transaction() as session:
                return transfer(session, request, by=by, authorize=authorize, now=now)
        except IntegrityError:
            if attempt == 2:
                raise
            log.info("transfer raced a twin; looking again", extra={"transfer_id": request.id})
    raise AssertionError("unreachable")


def transfer(session: Session, request: Request, *, by: str | None, authorize: Authorize = anyone,
             now: datetime | None = None, reason: str = domain.VOIDED) -> Outcome:
    """Move points as ``request`` asks, in ``session``'s transaction. Raises
    :class:`domain.Invalid`, :class:`domain.Refused` or :class:`domain.NotPermitted`."""
    now = now or utcnow()
    try:
        if request.pending_id:
            outcome = _resolve(session, request, by=by, authorize=authorize, now=now, reason=reason)
        else:
            outcome = _new(session, request, by=by, authorize=authorize, now=now)
    except (Refused, domain.Invalid, domain.NotPermitted):
        COUNTED[request.phase, "refused"].inc()
        raise
    # Counted once it commits (count_committed): a request that raced its twin rolls back
    # and runs again as a replay.
    session.info.setdefault(COUNT, []).append(COUNTED[request.phase, "created" if outcome.created else "replayed"])
    return outcome


COUNT = "points.counted"


def count_committed(session: Session) -> None:
    """``after_commit``: count the transfers the transaction made or replayed."""
    if session.in_nested_transaction():
        return  # a savepoint released, not the transaction
    for counter in session.info.pop(COUNT, ()):
        counter.inc()


def forget_uncommitted(session: Session, previous) -> None:
    """``after_soft_rollback``: what rolled back was not done."""
    if not previous.nested:
        session.info.pop(COUNT, None)


def _new(session: Session, request: Request, *, by: str | None, authorize: Authorize, now: datetime) -> Outcome:
    domain.check_new(request)
    asked = domain.new_shape(request)
    # One round trip: both accounts locked in id order, and whether the id or the source is taken.
    rows = _lock(session, asked.debit_account_id, asked.credit_account_id, request.id, request.source)
    accounts = {row.id: row for row in rows}
    existing_id = rows[0].taken if rows else _taken(session, request.id)
    if existing_id is not None:
        return _replay(session, request.id, asked, authorize)
    for name in ("debit_account_id", "credit_account_id"):
        if getattr(asked, name) not in accounts:
            raise domain.Invalid(name, "no such account")
    debit, credit = accounts[asked.debit_account_id], accounts[asked.credit_account_id]
    if authorize is not anyone:
        authorize(account_view(debit), account_view(credit))
    used = rows[0].used
    if used is not None:
        raise Refused("source-used", f"source {request.source} already moved points: transfer {used}",
                      transfer_id=used)
    after_debit, after_credit = domain.move(asked.phase, totals_of(debit), totals_of(credit), asked.amount)
    expires = domain.expires_at(now, asked.timeout_seconds)
    row = _write(session, request.id, asked, debit, credit, after_debit, after_credit, by=by, at=now,
                 expires_at=expires)
    if asked.phase == PENDING:
        insert_at_commit(session, H, {"pending_id": request.id, "expires_at": expires})
    _record(session, asked, row, debit, credit, after_debit, after_credit)
    return Outcome(row, True)


def _resolve(session: Session, request: Request, *, by: str | None, authorize: Authorize, now: datetime,
             reason: str) -> Outcome:
    if request.post_pending_id and request.void_pending_id:
        raise domain.Invalid("void_pending_id", "a transfer posts or voids a hold, not both")
    pending_id = request.pending_id
    known = {r.id: r for r in session.execute(select(T).where(T.c.id.in_({request.id, pending_id}))).all()}
    hold = known.get(pending_id)
    if hold is None or hold.phase != PENDING:
        field = "post_pending_id" if request.post_pending_id else "void_pending_id"
        raise domain.Invalid(field, "no such pending transfer" if hold is None else "not a pending transfer")
    asked = domain.resolution_shape(request, shape_of(hold))
    if request.id in known and request.id != pending_id:
        return _replay(session, request.id, asked, authorize, known[request.id])
    if request.id == pending_id:
        raise Refused("exists-with-different-fields", f"transfer {request.id} is the hold itself",
                      fields=["post_pending_id" if request.post_pending_id else "void_pending_id"])
    # Who may, before anything about the hold's state is told (the accounts' community never changes).
    sides = {a.id: a for a in session.execute(select(A).where(
        A.c.id.in_((hold.debit_account_id, hold.credit_account_id)))).all()}
    authorize(account_view(sides[hold.debit_account_id]), account_view(sides[hold.credit_account_id]))
    if request.source and (used := session.execute(select(T.c.id).where(T.c.source == request.source)).scalar()):
        raise Refused("source-used", f"source {request.source} already moved points: transfer {used}",
                      transfer_id=used)
    # The hold first (its row gone: nobody else resolves it), then the accounts in id order.
    claimed = session.execute(delete(H).where(H.c.pending_id == pending_id).returning(H.c.expires_at)).first()
    if claimed is None:
        _already_resolved(session, pending_id)
    if asked.phase == POST and claimed.expires_at is not None and aware(claimed.expires_at) <= now:
        raise Refused("pending-expired", f"the hold {pending_id} expired at {aware(claimed.expires_at).isoformat()}; "
                      "it can only be voided", pending_id=pending_id)
    rows = _lock(session, hold.debit_account_id, hold.credit_account_id, request.id)
    accounts = {row.id: row for row in rows}
    debit, credit = accounts[hold.debit_account_id], accounts[hold.credit_account_id]
    after_debit, after_credit = domain.move(asked.phase, totals_of(debit), totals_of(credit), asked.amount,
                                            held=hold.amount)
    row = _write(session, request.id, asked, debit, credit, after_debit, after_credit, by=by, at=now,
                 reason=reason if asked.phase == VOID else None)
    _record(session, asked, row, debit, credit, after_debit, after_credit, reason=reason, source=hold.source)
    for hook in ON_RESOLVED:
        hook(session, hold, row)
    return Outcome(row, True)


def _taken(session: Session, transfer_id: str) -> str | None:
    return session.execute(select(T.c.id).where(T.c.id == transfer_id)).scalar()


def _replay(session: Session, transfer_id: str, asked: Shape, authorize: Authorize, row=None) -> Outcome:
    row = row if row is not None else session.execute(select(T).where(T.c.id == transfer_id)).one()
    accounts = {a.id: a for a in session.execute(select(A).where(
        A.c.id.in_((row.debit_account_id, row.credit_account_id)))).all()}
    authorize(account_view(accounts[row.debit_account_id]), account_view(accounts[row.credit_account_id]))
    domain.same_or_refused(shape_of(row), asked, transfer_id)
    return Outcome(transfer_view(row), False)


def _already_resolved(session: Session, pending_id: str) -> None:
    resolution = session.execute(select(T.c.id, T.c.phase, T.c.reason).where(T.c.pending_id == pending_id)).first()
    if resolution is None:  # the hold's row went with a transaction that has not committed yet
        raise Refused("pending-busy", f"the hold {pending_id} is being resolved; retry shortly", pending_id=pending_id)
    what = "posted" if resolution.phase == POST else (resolution.reason or domain.VOIDED)
    raise Refused(f"pending-{what}", f"the hold {pending_id} was already {what} (transfer {resolution.id})",
                  pending_id=pending_id, resolved_by=resolution.id)


def _write(session: Session, transfer_id: str, asked: Shape, debit, credit, after_debit: Totals,
           after_credit: Totals, *, by: str | None, at: datetime, expires_at: datetime | None = None,
           reason: str | None = None) -> dict:
    """The accounts' new totals (one UPDATE for both), the transfer and its two entries
    (written at commit, with the event, in one statement)."""
    d, c = debit.id, credit.id
    _write_totals(session, d, after_debit, c, after_credit)
    row = {"id": transfer_id, "phase": asked.phase, "debit_account_id": d, "credit_account_id": c,
           "amount": asked.amount, "code": asked.code, "source": asked.source, "memo": asked.memo,
           "pending_id": asked.pending_id, "timeout_seconds": asked.timeout_seconds, "expires_at": expires_at,
           "reason": reason, "at": at, "by": by}
    insert_at_commit(session, T, row)
    for side, account, counterparty, after in (("debit", d, c, after_debit), ("credit", c, d, after_credit)):
        insert_at_commit(session, E, {
            "account_id": account, "transfer_id": transfer_id, "side": side, "phase": asked.phase,
            "code": asked.code, "counterparty_id": counterparty, "amount": asked.amount, "at": at,
            "balance": after.balance, "debits_pending": after.debits_pending,
            "credits_pending": after.credits_pending})
    return transfer_view(row)


def _record(session: Session, asked: Shape, row: dict, debit, credit, after_debit: Totals, after_credit: Totals,
            *, reason: str = domain.VOIDED, source: str | None = None) -> None:
    def side(account, after: Totals) -> dict:
        return {"id": account.id, "kind": account.kind, "community": account.community,
                "holder": account.holder or None, "balance": after.balance, "available": after.available}

    data = {"transfer_id": row["id"], "code": asked.code, "amount": asked.amount,
            "debit": side(debit, after_debit), "credit": side(credit, after_credit),
            "source": asked.source or source, "at": row["at"]}
    if asked.phase == PENDING:
        outbox.record(session, TRANSFER_PENDING, data | {"expires_at": row["expires_at"]}, subject=row["id"])
    elif asked.phase == VOID:
        outbox.record(session, TRANSFER_VOIDED, data | {"pending_id": asked.pending_id, "reason": reason},
                      subject=row["id"])
    else:
        outbox.record(session, TRANSFER_POSTED, data | {"pending_id": asked.pending_id}, subject=row["id"])


def shape_of(row) -> Shape:
    return Shape(row.phase, row.debit_account_id, row.credit_account_id, row.amount, row.code, row.pending_id,
                 row.timeout_seconds, row.source, row.memo)


def transfer_view(row) -> dict:
    get = row.get if isinstance(row, dict) else lambda name: getattr(row, name)
    return {name: get(name) for name in ("id", "phase", "debit_account_id", "credit_account_id", "amount", "code",
                                         "source", "memo", "pending_id", "timeout_seconds", "reason", "by")} \
        | {"at": aware(get("at")), "expires_at": aware(get("expires_at"))}


def find_transfer(session: Session, transfer_id: str) -> dict | None:
    row = session.execute(select(T).where(T.c.id == transfer_id)).first()
    return None if row is None else transfer_view(row)


# --------------------------------------------------------------------------
# what the next parts build on
# --------------------------------------------------------------------------
#
# A redemption is one hold (``Request(pending=True, timeout_seconds=…)``) from the
# person's account to the supermarket's, posted at the hand-over (``post_pending_id``)
# or voided when called off (``void_pending_id``) or by the sweep at its timeout.
# An award is :func:`award`: one posted transfer from the community's issuing pool
# whose id and source come from the source event.

AWARD_NAMESPACE = uuid.UUID("0c9a3f7e-5b2d-4f61-8e3a-7d4c2b1a9f10")


def derived_id(source: str) -> str:
    """The transfer id for ``source`` (e.g. ``"<rule>:<event id>"``): the same every time
    the source comes, so a redelivered or duplicated event finds its transfer."""
    return str(uuid.uuid5(AWARD_NAMESPACE, source))


def award(session: Session, *, community: str, account_id: int, amount: int, source: str, code: str = "award",
          memo: str | None = None, by: str | None = None) -> Outcome:
    """Points from ``community``'s issuing pool to ``account_id``, at most once per
    ``source``: the second time it answers the first transfer (``created`` False). The
    same source with another amount is refused (``exists-with-different-fields``)."""
    pool, _ = open_account(session, kind=domain.ISSUING, community=community)
    return transfer(session, Request(id=derived_id(source), debit_account_id=pool.id, credit_account_id=account_id,
                                     amount=amount, code=code, source=source, memo=memo), by=by)


# --------------------------------------------------------------------------
# holds that time out
# --------------------------------------------------------------------------


def expiry_id(pending_id: str) -> str:
    return str(uuid.uuid5(EXPIRY_NAMESPACE, pending_id))


def expire_one(db: Database, now: datetime | None = None) -> str | None:
    """Void one hold past its timeout, in a transaction of its own; its pending id, or
    None when none is due. Several sweeps share the work: each takes a hold no other
    has locked (SKIP LOCKED), and the hold's row, deleted by the void, can go once."""
    now = now or utcnow()
    with db.transaction() as session:
        due = session.execute(select(H.c.pending_id).where(H.c.expires_at <= now).order_by(H.c.expires_at)
                              .limit(1).with_for_update(skip_locked=True)).scalar()
        if due is None:
            return None
        transfer(session, Request(id=expiry_id(due), void_pending_id=due), by=None, now=now, reason=domain.EXPIRED)
        return due


def sweep(db: Database, now: datetime | None = None, *, limit: int = 1000) -> int:
    """Void every hold past its timeout (up to ``limit``); how many."""
    voided = raced = 0
    while voided < limit and raced < limit:
        try:
            if expire_one(db, now) is None:
                break
        except (Refused, IntegrityError):
            raced += 1  # another sweep, or the holder, resolved it first: nothing to do
            continue
        voided += 1
    return voided


def expire_holds(runtime, stop: threading.Event) -> None:
    """The worker's loop (``ServiceSpec.background``): holds past their timeout voided
    every ``GRIDGOV_POINTS_SWEEP_SECONDS`` (5)."""
    keep_tidy(stop, runtime.extras.get("sweep_seconds", 5.0), lambda: sweep(runtime.db), "holds past their timeout",
              done="voided")


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------


def count_entries(session: Session, account_id: int) -> int:
    return session.execute(select(func.count()).select_from(E).where(E.c.account_id == account_id)).scalar_one()
