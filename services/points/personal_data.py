"""What points holds about a person (PIPL), all in one download:

* her accounts (by her user id), their balances and every line of their statements;
* the households grids bound her to, as points keeps them (households.py);
* the activities she signed up for and attended;
* her redemptions in the points supermarkets (what she took, where, when; no hand-over code).

Erasure keeps the ledger's facts: its entries are facts other accounts' balances rest on
(the community's issuing pool, a supermarket), and they hold no identifier but the user
id, which identity's erasure leaves pointing at nobody — as dispatch keeps a case's
facts. The ledger keeps no name, phone or free text written by her. Her sign-ups and
redemptions stay likewise under her user id (an activity's places, a supermarket's
turnover and stock rest on them). Her household binding goes: it says where she lives,
and nothing else rests on it.
"""

from __future__ import annotations

from sqlalchemy import delete, select

from gridkit.privacy import PersonalData

from . import domain, ledger, redemptions
from .tables import Account, Activity, Entry, Redemption, Resident, Signup


class Points(PersonalData):
    def export(self, runtime, session, user_id: str) -> dict:
        accounts = session.scalars(select(Account).where(Account.kind == domain.PERSON, Account.holder == user_id)
                                   .order_by(Account.id)).all()
        out = []
        for account in accounts:
            lines = session.scalars(select(Entry).where(Entry.account_id == account.id).order_by(Entry.id)).all()
            out.append(ledger.account_view(account) | {"statement": [
                {"transfer_id": e.transfer_id, "at": e.at, "phase": e.phase, "code": e.code, "side": e.side,
                 "amount": e.amount, "balance": e.balance, "held": e.debits_pending} for e in lines]})
        households = session.execute(select(Resident.household, Resident.since).where(Resident.user_id == user_id)
                                     .order_by(Resident.since)).all()
        signups = session.execute(select(Activity.id, Activity.community, Activity.title, Signup.signed_up_at,
                                         Signup.attended_at).join(Activity, Activity.id == Signup.activity_id)
                                  .where(Signup.user_id == user_id).order_by(Signup.signed_up_at)).all()
        mine = session.scalars(select(Redemption).where(Redemption.resident == user_id)
                               .order_by(Redemption.at)).all()
        return {
            "accounts": out,
            "households": [{"household": h.household, "since": h.since} for h in households],
            "activities": [{"activity_id": s.id, "community": s.community, "title": s.title,
                            "signed_up_at": s.signed_up_at, "attended_at": s.attended_at} for s in signups],
            "redemptions": [redemptions.view(session, r, with_code=False) for r in mine],
        }

    def erase(self, runtime, session, user_id, at) -> None:
        # the ledger's facts, sign-ups and redemptions stay under her user id (see above)
        session.execute(delete(Resident).where(Resident.user_id == user_id))
