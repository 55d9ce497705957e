"""The ledger checked against itself: what must hold at every moment, whatever
happened. The tests run it after every ledger test; an operator can run it on a
copy of production (it reads every row).

* the sum of all balances is zero, and pending debits equal pending credits;
* every account's totals equal the sum of its entries, and each entry's running
  balance and holds are the previous line's plus what its transfer did;
* every transfer has exactly its two entries, one per side;
* every hold is posted, voided or still open — exactly one of them; a post takes at
  most what was held, a void releases exactly that;
* an account's pending totals are the holds open on it;
* no account flagged ``debits_must_not_exceed_credits`` has more debits than credits.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from .domain import PENDING, POST, SINGLE, VOID, Totals
from .ledger import totals_of
from .tables import Account, Entry, OpenHold, Transfer


def discrepancies(session: Session) -> list[str]:
    """Every broken rule, in words (empty: the ledger is sound)."""
    found: list[str] = []
    accounts = {a.id: a for a in session.execute(select(Account.__table__)).all()}
    transfers = {t.id: t for t in session.execute(select(Transfer.__table__)).all()}
    entries = session.execute(select(Entry.__table__).order_by(Entry.id)).all()
    open_holds = set(session.execute(select(OpenHold.pending_id)).scalars())

    totals = {i: totals_of(a) for i, a in accounts.items()}
    if sum(t.balance for t in totals.values()) != 0:
        found.append(f"the balances sum to {sum(t.balance for t in totals.values())}, not 0")
    if sum(t.debits_pending for t in totals.values()) != sum(t.credits_pending for t in totals.values()):
        found.append("pending debits and pending credits differ")

    # Replay every entry: the running totals must be the stored ones, line by line.
    running: dict[int, Totals] = defaultdict(Totals)
    sides: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for e in entries:
        t = transfers.get(e.transfer_id)
        if t is None:
            found.append(f"entry {e.id} names transfer {e.transfer_id}, which does not exist")
            continue
        sides[e.transfer_id].append((e.side, e.account_id))
        held = transfers[t.pending_id].amount if t.pending_id in transfers else 0
        before = running[e.account_id]
        sign = {"debit": ("debits_pending", "debits_posted"), "credit": ("credits_pending", "credits_posted")}[e.side]
        moved = {SINGLE: {sign[1]: t.amount}, PENDING: {sign[0]: t.amount},
                 POST: {sign[0]: -held, sign[1]: t.amount}, VOID: {sign[0]: -held}}[t.phase]
        after = before.moved(**moved)
        running[e.account_id] = after
        if (e.balance, e.debits_pending, e.credits_pending) != (after.balance, after.debits_pending,
                                                                 after.credits_pending):
            found.append(f"entry {e.id} of account {e.account_id}: stored balance {e.balance}, held "
                         f"{e.debits_pending}, incoming {e.credits_pending}; its transfers give {after.balance}, "
                         f"{after.debits_pending}, {after.credits_pending}")
        if (e.phase, e.amount, e.code) != (t.phase, t.amount, t.code):
            found.append(f"entry {e.id} differs from its transfer {t.id}")
    for account_id, account in totals.items():
        replayed = running[account_id]
        mine = (account.debits_pending, account.debits_posted, account.credits_pending, account.credits_posted)
        theirs = (replayed.debits_pending, replayed.debits_posted, replayed.credits_pending,
                  replayed.credits_posted)
        if mine != theirs:
            found.append(f"account {account_id}: totals {mine}, its entries add up to {theirs}")
        if account.debits_must_not_exceed_credits and \
                account.debits_pending + account.debits_posted > account.credits_posted:
            found.append(f"account {account_id} has more debits than credits (balance {account.balance}, "
                         f"held {account.debits_pending})")

    for t in transfers.values():
        want = sorted([("credit", t.credit_account_id), ("debit", t.debit_account_id)])
        if sorted(sides.get(t.id, [])) != want:
            found.append(f"transfer {t.id} has entries {sorted(sides.get(t.id, []))}, not {want}")

    resolutions: dict[str, list] = defaultdict(list)
    for t in transfers.values():
        if t.pending_id is not None:
            resolutions[t.pending_id].append(t)
    held_on: dict[tuple[str, int], int] = defaultdict(int)
    for t in transfers.values():
        if t.phase != PENDING:
            continue
        done = resolutions.get(t.id, [])
        if len(done) + (t.id in open_holds) != 1:
            found.append(f"hold {t.id}: {len(done)} resolutions, {'open' if t.id in open_holds else 'not open'}")
        for r in done:
            if (r.debit_account_id, r.credit_account_id, r.code) != (t.debit_account_id, t.credit_account_id, t.code):
                found.append(f"{r.phase} {r.id} does not match its hold {t.id}")
            if (r.phase == POST and r.amount > t.amount) or (r.phase == VOID and r.amount != t.amount):
                found.append(f"{r.phase} {r.id} moves {r.amount} of a hold of {t.amount}")
        if t.id in open_holds:
            held_on[("debit", t.debit_account_id)] += t.amount
            held_on[("credit", t.credit_account_id)] += t.amount
    for pending_id in open_holds - {t.id for t in transfers.values() if t.phase == PENDING}:
        found.append(f"open hold {pending_id} is not a pending transfer")
    for pending_id, done in resolutions.items():
        if transfers.get(pending_id) is None or transfers[pending_id].phase != PENDING:
            found.append(f"{[r.id for r in done]} resolve {pending_id}, which is not a hold")
    for account_id, account in totals.items():
        if (account.debits_pending, account.credits_pending) != (held_on[("debit", account_id)],
                                                                 held_on[("credit", account_id)]):
            found.append(f"account {account_id}: pending {account.debits_pending}/{account.credits_pending}, "
                         f"open holds {held_on[('debit', account_id)]}/{held_on[('credit', account_id)]}")
    return found
