"""Points supermarkets (积分超市): a supermarket per village or community with its ledger
account, its keepers, its catalogue; and each community's settings for the programme.

Every door (HTTP, the demo) calls these use cases, in the caller's transaction.
Refusals are the ledger's: :class:`domain.Invalid` (422), :class:`domain.Refused`
(409), :class:`domain.NotPermitted` (403), and :class:`Unknown` (404).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlalchemy.orm import Session

from gridkit.auth import Principal

from . import domain, ledger
from .tables import Item, Programme, Supermarket, utcnow

KEEPER = "supermarket_keeper"
SCOPE = "supermarket:"
PERSON, HOUSEHOLD = domain.PERSON, domain.HOUSEHOLD
TAKERS = (PERSON, HOUSEHOLD)  # whose points a redemption spends; whom a monthly limit counts
DEFAULT_HOLD_MINUTES = 48 * 60  # two days to come and fetch what one picked
MAX_HOLD_MINUTES = 14 * 24 * 60
MAX_STOCK = 10**6
# Months are the county's: a redemption at 00:30 on the 1st counts in the new month. The
# county's zone is the settings' (GRIDGOV_TIMEZONE), in every session as earning's periods read
# it (awards.local_tz); this one is the default where no session is at hand.
LOCAL = ZoneInfo("Asia/Shanghai")


class Unknown(Exception):
    """No such thing (HTTP 404)."""

    def __init__(self, what: str, key):
        super().__init__(f"no {what} {key}")
        self.what, self.key = what, key


def month_of(moment: datetime, tz: ZoneInfo = LOCAL) -> str:
    return moment.astimezone(tz).strftime("%Y-%m")


# --------------------------------------------------------------------------
# who may
# --------------------------------------------------------------------------


def administers(principal: Principal, community: str) -> bool:
    """A community admin of ``community`` (scope ``division:<community>``), a county admin, a sysadmin."""
    if principal.has_role("sysadmin", "county_admin"):
        return True
    return any(g.scope == f"division:{community}" for g in principal.grants_for("community_admin"))


def keeps(principal: Principal, supermarket_id: int) -> bool:
    return any(g.scope == f"{SCOPE}{supermarket_id}" for g in principal.grants_for(KEEPER))


def runs(principal: Principal, supermarket: Supermarket) -> bool:
    """Its keepers and the admins of its community run a supermarket (catalogue, hand-overs)."""
    return keeps(principal, supermarket.id) or administers(principal, supermarket.community)


# --------------------------------------------------------------------------
# supermarkets and their catalogue
# --------------------------------------------------------------------------


def open_supermarket(session: Session, *, community: str, name: str, hold_minutes: int = DEFAULT_HOLD_MINUTES,
                     by: str | None = None) -> Supermarket:
    """A new supermarket with its ledger account (kind ``supermarket``, holder its id)."""
    if not 1 <= hold_minutes <= MAX_HOLD_MINUTES:
        raise domain.Invalid("hold_minutes", f"from 1 to {MAX_HOLD_MINUTES}")
    supermarket = Supermarket(community=community, name=name, hold_minutes=hold_minutes, opened_at=utcnow(),
                              opened_by=by)
    session.add(supermarket)
    session.flush()  # its id names its account
    supermarket.account_id = supermarket_account(session, supermarket, by)
    session.flush()
    return supermarket


def get_supermarket(session: Session, supermarket_id: int) -> Supermarket:
    found = session.get(Supermarket, supermarket_id)
    if found is None:
        raise Unknown("supermarket", supermarket_id)
    return found


def add_item(session: Session, supermarket: Supermarket, *, name: str, price: int, stock: int = 0,
             monthly_limit: int | None = None, limit_per: str = PERSON) -> Item:
    check_item(price=price, stock=stock, monthly_limit=monthly_limit, limit_per=limit_per)
    item = Item(supermarket_id=supermarket.id, name=name, price=price, stock=stock, monthly_limit=monthly_limit,
                limit_per=limit_per, active=True)
    session.add(item)
    session.flush()
    return item


def check_item(*, price: int | None = None, stock: int | None = None, monthly_limit: int | None = None,
               limit_per: str | None = None) -> None:
    domain.check_amount(price, "price")
    if stock is not None and not 0 <= stock <= MAX_STOCK:
        raise domain.Invalid("stock", f"from 0 to {MAX_STOCK}")
    if monthly_limit is not None and not 1 <= monthly_limit <= MAX_STOCK:
        raise domain.Invalid("monthly_limit", f"from 1 to {MAX_STOCK}, or null for none")
    if limit_per is not None and limit_per not in TAKERS:
        raise domain.Invalid("limit_per", f"one of {', '.join(TAKERS)}")


def get_item(session: Session, supermarket: Supermarket, item_id: int) -> Item:
    item = session.get(Item, item_id)
    if item is None or item.supermarket_id != supermarket.id:
        raise Unknown("item", item_id)
    return item


def change_item(session: Session, item: Item, **changes) -> Item:
    """Name, price, monthly limit, whether it is offered. Stock changes by :func:`restock`
    only: a new absolute number would race the redemptions reserving from it."""
    check_item(price=changes.get("price"), monthly_limit=changes.get("monthly_limit"),
               limit_per=changes.get("limit_per"))
    for name, value in changes.items():
        setattr(item, name, value)
    session.flush()
    return item


def restock(session: Session, item: Item, quantity: int) -> Item:
    """Pieces put on (or, negative, taken off) the shelf; never below what is left."""
    if type(quantity) is not int or quantity == 0 or abs(quantity) > MAX_STOCK:
        raise domain.Invalid("quantity", f"a whole number of pieces from -{MAX_STOCK} to {MAX_STOCK}, not 0")
    changed = session.execute(update(Item).where(Item.id == item.id, Item.stock + quantity >= 0,
                                                 Item.stock + quantity <= MAX_STOCK)
                              .values(stock=Item.stock + quantity).returning(Item.stock)).scalar()
    if changed is None:
        session.refresh(item)
        raise domain.Refused("out-of-stock", f"{item.name}: only {item.stock} on the shelf", stock=item.stock)
    session.refresh(item)
    return item


# --------------------------------------------------------------------------
# a community's programme
# --------------------------------------------------------------------------


def programme(session: Session, community: str) -> Programme:
    return session.get(Programme, community) or Programme(community=community, redeem_from=PERSON, households=None)


def set_programme(session: Session, community: str, *, redeem_from: str | None = None,
                  households: int | None = None) -> Programme:
    if redeem_from is not None and redeem_from not in TAKERS:
        raise domain.Invalid("redeem_from", f"one of {', '.join(TAKERS)}")
    if households is not None and not 0 < households <= 10**8:
        raise domain.Invalid("households", "a number of households from 1")
    found = session.get(Programme, community)
    if found is None:
        found = Programme(community=community, redeem_from=PERSON)
        session.add(found)
    if redeem_from is not None:
        found.redeem_from = redeem_from
    if households is not None:
        found.households = households
    session.flush()
    return found


def supermarket_account(session: Session, supermarket: Supermarket, by: str | None = None) -> int:
    account, _ = ledger.open_account(session, kind=domain.SUPERMARKET, community=supermarket.community,
                                     holder=str(supermarket.id), by=by)
    return account.id
