"""What points holds about a person (PIPL): her accounts (by her user id), their
balances and every line of their statements.

Erasure keeps all of it: a ledger's entries are facts other accounts' balances rest
on (the community's issuing pool, a supermarket), and they hold no identifier but the
user id, which identity's erasure leaves pointing at nobody — as dispatch keeps a
case's facts. The ledger keeps no name, phone or free text written by her. Her
redemptions in the points supermarkets (what she took, where, when) are in her
download too, and stay likewise: a supermarket's turnover and stock rest on them.
"""

from __future__ import annotations

from sqlalchemy import select

from gridkit.privacy import PersonalData

from . import domain, ledger, redemptions
from .tables import Account, Entry, Redemption


class Accounts(PersonalData):
    def export(self, runtime, session, user_id: str) -> dict:
        accounts = session.scalars(select(Account).where(Account.kind == domain.PERSON, Account.holder == user_id)
                                   .order_by(Account.id)).all()
        out = []
        for account in accounts:
            lines = session.scalars(select(Entry).where(Entry.account_id == account.id).order_by(Entry.id)).all()
            out.append(ledger.account_view(account) | {"statement": [
                {"transfer_id": e.transfer_id, "at": e.at, "phase": e.phase, "code": e.code, "side": e.side,
                 "amount": e.amount, "balance": e.balance, "held": e.debits_pending} for e in lines]})
        mine = session.scalars(select(Redemption).where(Redemption.resident == user_id)
                               .order_by(Redemption.at)).all()
        return {"accounts": out, "redemptions": [redemptions.view(session, r, with_code=False) for r in mine]}

    def erase(self, runtime, session, user_id, at) -> None:
        return None  # the ledger's facts stay under her user id (see above)
