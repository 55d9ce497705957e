"""What points holds about a person (PIPL): her accounts (by her user id), their
balances and every line of their statements.

Erasure keeps all of it: a ledger's entries are facts other accounts' balances rest
on (the community's issuing pool, a supermarket), and they hold no identifier but the
user id, which identity's erasure leaves pointing at nobody — as dispatch keeps a
case's facts. The ledger keeps no name, phone or free text written by her.
"""

from __future__ import annotations

from sqlalchemy import select

from gridkit.privacy import PersonalData

from . import domain, ledger
from .tables import Account, Entry


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
        return {"accounts": out}

    def erase(self, runtime, session, user_id, at) -> None:
        return None  # the ledger's facts stay under her user id (see above)


# --------------------------------------------------------------------------
# Earning: her household binding, her sign-ups and attendances
# --------------------------------------------------------------------------


class AccountsAndEarning(Accounts):
    """Her accounts (above), the household grids bound her to (as points keeps it), and the
    activities she signed up for and attended. Erasure drops the household binding (an
    identifier of where she lives); sign-ups stay under her user id, as the ledger's facts."""

    def export(self, runtime, session, user_id: str) -> dict:
        from .tables import Activity, Resident, Signup

        households = session.execute(select(Resident.household, Resident.since).where(Resident.user_id == user_id)
                                     .order_by(Resident.since)).all()
        signups = session.execute(select(Activity.id, Activity.community, Activity.title, Signup.signed_up_at,
                                         Signup.attended_at).join(Activity, Activity.id == Signup.activity_id)
                                  .where(Signup.user_id == user_id).order_by(Signup.signed_up_at)).all()
        return super().export(runtime, session, user_id) | {
            "households": [{"household": h.household, "since": h.since} for h in households],
            "activities": [{"activity_id": s.id, "community": s.community, "title": s.title,
                            "signed_up_at": s.signed_up_at, "attended_at": s.attended_at} for s in signups]}

    def erase(self, runtime, session, user_id, at) -> None:
        from sqlalchemy import delete

        from .tables import Resident

        super().erase(runtime, session, user_id, at)
        session.execute(delete(Resident).where(Resident.user_id == user_id))
