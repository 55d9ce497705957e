"""Factories for tests of points (and of the services that will move points through it):
accounts in a community, points issued to them, the ledger's audit as an assertion."""

from __future__ import annotations

import uuid

from gridkit.service import Runtime

from . import audit, ledger
from .domain import Request

COMMUNITY = "DL-01-01"
OTHER_COMMUNITY = "DL-01-02"
ADMIN = ("community_admin", f"division:{COMMUNITY}")
OTHER_ADMIN = ("community_admin", f"division:{OTHER_COMMUNITY}")


def new_id() -> str:
    return str(uuid.uuid4())


def open_account(runtime: Runtime, kind: str = "person", holder: str | None = None, *,
                 community: str = COMMUNITY, household: str | None = None) -> int:
    if kind in ("person", "household", "supermarket") and holder is None:
        holder = f"{kind}-{uuid.uuid4().hex[:8]}"
    with runtime.db.transaction() as session:
        account, _ = ledger.open_account(session, kind=kind, community=community, holder=holder, household=household)
        return account.id


def pool(runtime: Runtime, community: str = COMMUNITY) -> int:
    """The community's issuing pool."""
    return open_account(runtime, "issuing", community=community)


def issue(runtime: Runtime, account_id: int, amount: int, *, community: str = COMMUNITY) -> str:
    """Award ``amount`` points to ``account_id`` from its community's pool; the transfer id."""
    transfer_id = new_id()
    ledger.submit(runtime.db, Request(id=transfer_id, debit_account_id=pool(runtime, community),
                                      credit_account_id=account_id, amount=amount, code="award"), by=None)
    return transfer_id


def balances(runtime: Runtime, *account_ids: int) -> list[int]:
    from .tables import Account

    with runtime.db.transaction() as session:
        return [ledger.totals_of(session.get(Account, i)).balance for i in account_ids]


def assert_sound(runtime: Runtime) -> None:
    """The ledger's audit finds nothing wrong (see points.audit)."""
    with runtime.db.transaction() as session:
        found = audit.discrepancies(session)
    assert not found, "the ledger's audit failed:\n" + "\n".join(found)
