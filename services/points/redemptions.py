"""Redemptions (兑换): a resident picks items in a points supermarket, the keeper hands
them over against the code the resident shows.

* **redeem**, in one transaction: the points are held in the ledger (a pending transfer
  whose id is the redemption's, from the resident's account — or her household's, where
  the community pools by household — to the supermarket's, with the supermarket's
  timeout), then each item's stock is taken (a guarded ``UPDATE … WHERE stock >= n``,
  items in id order) and each monthly limit counted (a guarded ``UPDATE`` of the
  taker's row for the month). Any refusal rolls the whole back: no points held, no stock
  taken. The resident gets a hand-over code.
* **hand over**: the keeper types the code; the hold is posted.
* **cancel** (the resident or the keeper), or the hold's timeout (the ledger's sweep):
  the hold is voided.

What happens to the redemption follows its hold, whoever resolved it: the ledger calls
:func:`on_hold_resolved` in the transaction that posts or voids the hold, which moves
the redemption out of ``held`` with a guarded ``UPDATE`` (once) and, for a void, puts
the stock and the monthly counts back. A hold is resolved at most once (the ledger), so
the stock returns at most once; it returns in the void's transaction, so exactly once.

Locks, always in this order: the ledger's (the hold's row, then the two accounts in id
order), then items in id order, then the monthly counts. Redeeming and resolving both
follow it, so they never wait for each other in a circle.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from . import awards, domain, households, ledger
from .domain import Refused, Request
from .events import (
    REDEMPTION_CANCELLED,
    REDEMPTION_EXPIRED,
    REDEMPTION_HANDED_OVER,
    REDEMPTION_HELD,
)
from .supermarkets import HOUSEHOLD, Unknown, month_of, programme
from .tables import (
    Account,
    Item,
    MonthlyTake,
    Redemption,
    RedemptionLine,
    Supermarket,
    aware,
    outbox,
    utcnow,
)

HELD, HANDED_OVER, CANCELLED, EXPIRED = "held", "handed_over", "cancelled", "expired"
STATUSES = (HELD, HANDED_OVER, CANCELLED, EXPIRED)
CODE = "redemption"  # the ledger code of a redemption's hold
MAX_LINES, MAX_PIECES = 50, 1000
# 8 characters a resident reads out or shows without ambiguity (no 0/O, 1/I/L): ~8.5·10¹¹ codes.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 8
# The ids of a redemption's post and void derive from it: a retried hand-over or cancel
# finds the first in the ledger and changes nothing.
HAND_OVER_NAMESPACE = uuid.UUID("4b8e2f1a-7c3d-4e5f-9a0b-1c2d3e4f5a61")
CANCEL_NAMESPACE = uuid.UUID("9d7c6b5a-4e3f-4a2b-8c1d-0e9f8a7b6c52")
R, ITEMS, T = Redemption.__table__, Item.__table__, MonthlyTake.__table__


@dataclass(frozen=True)
class Line:
    item_id: int
    quantity: int


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normal_code(code: str) -> str:
    """As the keeper typed it: any case, spaces and dashes ignored."""
    return "".join(ch for ch in code.upper() if ch not in " -")


# --------------------------------------------------------------------------
# redeem
# --------------------------------------------------------------------------


def check_lines(lines: list[Line]) -> None:
    if not lines:
        raise domain.Invalid("lines", "pick at least one item")
    if len(lines) > MAX_LINES:
        raise domain.Invalid("lines", f"at most {MAX_LINES} items in one redemption")
    if len({line.item_id for line in lines}) != len(lines):
        raise domain.Invalid("lines", "each item once, with its quantity")
    for line in lines:
        if type(line.quantity) is not int or not 1 <= line.quantity <= MAX_PIECES:
            raise domain.Invalid("lines", f"a quantity is a whole number from 1 to {MAX_PIECES}")


def household_of(session: Session, resident: str, community: str, person: Account | None) -> str | None:
    """The household a resident's points count towards: her account's, else the one grids
    bound her to in this community."""
    if person is not None and person.household:
        return person.household
    return households.household_of(session, resident, community)


def redeem(session: Session, *, redemption_id: str, supermarket: Supermarket, resident: str, lines: list[Line],
           now: datetime | None = None) -> tuple[Redemption, bool]:
    """Hold the points and reserve the items; (redemption, created). The same id again
    with the same basket answers the first (created False); with another, 409."""
    now = now or utcnow()
    check_lines(lines)
    lines = sorted(lines, key=lambda line: line.item_id)  # items are taken in id order
    existing = session.get(Redemption, redemption_id)
    if existing is not None:
        return _replay(session, existing, supermarket, resident, lines), False
    items = {item.id: item for item in session.scalars(select(Item).where(
        Item.id.in_([line.item_id for line in lines]), Item.supermarket_id == supermarket.id))}
    for line in lines:
        item = items.get(line.item_id)
        if item is None:
            raise domain.Invalid("lines", f"no item {line.item_id} in this supermarket")
        if not item.active:
            raise Refused("item-withdrawn", f"{item.name} is no longer offered", item_id=item.id)
    amount = sum(items[line.item_id].price * line.quantity for line in lines)
    domain.check_amount(amount)

    person = session.scalars(select(Account).where(Account.community == supermarket.community,
                                                   Account.kind == domain.PERSON, Account.holder == resident)).first()
    household = household_of(session, resident, supermarket.community, person)
    pays = person
    if programme(session, supermarket.community).redeem_from == HOUSEHOLD and household:
        pays = session.scalars(select(Account).where(Account.community == supermarket.community,
                                                     Account.kind == domain.HOUSEHOLD,
                                                     Account.holder == household)).first()
    if pays is None:
        raise Refused("exceeds-credits", "you have no points in this community yet", available=0)

    # 1. the points (locks the two accounts: a resident's redemptions take turns)
    outcome = ledger.transfer(session, Request(
        id=redemption_id, debit_account_id=pays.id, credit_account_id=supermarket.account_id, amount=amount,
        code=CODE, pending=True, timeout_seconds=supermarket.hold_minutes * 60,
        memo=f"{supermarket.name}"[:200]), by=resident, now=now)
    if not outcome.created:
        # The same redemption sent twice at once: its twin committed while this one waited
        # for the accounts' lock, and the ledger found the twin's hold. Answer as a replay.
        twin = session.get(Redemption, redemption_id)
        if twin is not None:
            return _replay(session, twin, supermarket, resident, lines), False
        raise Refused("exists-with-different-fields", f"{redemption_id} is another transfer's id", fields=["id"])
    month = month_of(now, awards.local_tz(session))
    # 2. the stock, 3. the monthly limits
    for line in lines:
        take_stock(session, items[line.item_id], line.quantity)
    for line in lines:
        item = items[line.item_id]
        if item.monthly_limit is not None:
            count_take(session, item, taker(item.limit_per, resident, household), month, line.quantity)

    redemption = Redemption(id=redemption_id, supermarket_id=supermarket.id, community=supermarket.community,
                            resident=resident, household=household, account_id=pays.id, amount=amount, month=month,
                            code=new_code(), status=HELD, at=now, expires_at=outcome.transfer["expires_at"])
    session.add(redemption)
    session.flush()
    session.add_all(RedemptionLine(redemption_id=redemption_id, item_id=line.item_id, quantity=line.quantity,
                                   price=items[line.item_id].price) for line in lines)
    session.flush()
    outbox.record(session, REDEMPTION_HELD, event_data(redemption, supermarket, lines), subject=redemption_id)
    return redemption, True


def _replay(session: Session, existing: Redemption, supermarket: Supermarket, resident: str,
            lines: list[Line]) -> Redemption:
    if existing.resident != resident:
        raise Refused("exists-with-different-fields", f"redemption {existing.id} is someone else's", fields=["id"])
    asked = [(line.item_id, line.quantity) for line in lines]
    had = [(line.item_id, line.quantity) for line in lines_of(session, existing.id)]
    different = [name for name, same in (("supermarket_id", existing.supermarket_id == supermarket.id),
                                         ("lines", asked == had)) if not same]
    if different:
        raise Refused("exists-with-different-fields",
                      f"redemption {existing.id} exists with different fields: {', '.join(different)}",
                      fields=different)
    return existing


def taker(limit_per: str, resident: str, household: str | None) -> str:
    """Whom a monthly limit counts: the household, where the item is limited per household
    and the resident has one; else the person."""
    return f"household:{household}" if limit_per == HOUSEHOLD and household else f"person:{resident}"


def take_stock(session: Session, item: Item, quantity: int) -> None:
    """Reserve ``quantity`` pieces, never more than are left, at the price the basket was
    priced at; 409 otherwise."""
    left = session.execute(update(ITEMS).where(ITEMS.c.id == item.id, ITEMS.c.stock >= quantity, ITEMS.c.price == item.price,
                                           ITEMS.c.active.is_(True))
                           .values(stock=ITEMS.c.stock - quantity).returning(ITEMS.c.stock)).scalar()
    if left is not None:
        return
    now = session.execute(select(ITEMS.c.stock, ITEMS.c.price, ITEMS.c.active).where(ITEMS.c.id == item.id)).one()
    if not now.active:
        raise Refused("item-withdrawn", f"{item.name} is no longer offered", item_id=item.id)
    if now.price != item.price:
        raise Refused("price-changed", f"{item.name} now costs {now.price} points", item_id=item.id, price=now.price)
    raise Refused("out-of-stock", f"{item.name}: {now.stock} left, {quantity} asked", item_id=item.id,
                  stock=now.stock)


def count_take(session: Session, item: Item, who: str, month: str, quantity: int) -> None:
    """Count ``quantity`` against the item's monthly limit for ``who``; 409 past it."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(insert(T).values(item_id=item.id, taker=who, month=month, quantity=0)
                    .on_conflict_do_nothing(index_elements=["item_id", "taker", "month"]))
    taken = session.execute(update(T).where(T.c.item_id == item.id, T.c.taker == who, T.c.month == month,
                                            T.c.quantity + quantity <= item.monthly_limit)
                            .values(quantity=T.c.quantity + quantity).returning(T.c.quantity)).scalar()
    if taken is None:
        before = session.execute(select(T.c.quantity).where(T.c.item_id == item.id, T.c.taker == who,
                                                            T.c.month == month)).scalar_one()
        raise Refused("monthly-limit", f"{item.name}: at most {item.monthly_limit} a month per "
                      f"{who.split(':', 1)[0]}; {before} taken this month, {quantity} asked",
                      item_id=item.id, limit=item.monthly_limit, taken=before)


# --------------------------------------------------------------------------
# hand over, cancel
# --------------------------------------------------------------------------


def find_by_code(session: Session, supermarket: Supermarket, code: str) -> Redemption:
    """The redemption of this supermarket with this code; a code of another supermarket's
    is not found."""
    found = session.scalars(select(Redemption).where(Redemption.code == normal_code(code),
                                                     Redemption.supermarket_id == supermarket.id)).first()
    if found is None:
        raise Unknown("redemption with code", code)
    return found


def still_held(redemption: Redemption) -> None:
    if redemption.status != HELD:
        raise Refused(f"redemption-{redemption.status.replace('_', '-')}",
                      f"the redemption was already {redemption.status.replace('_', ' ')}",
                      state=redemption.status)


def hand_over(session: Session, redemption: Redemption, *, by: str, now: datetime | None = None) -> Redemption:
    """The keeper gives the items: the hold is posted (409 when it expired meanwhile)."""
    now = now or utcnow()
    still_held(redemption)
    try:
        ledger.transfer(session, Request(id=str(uuid.uuid5(HAND_OVER_NAMESPACE, redemption.id)),
                                         post_pending_id=redemption.id), by=by, now=now)
    except Refused as exc:
        if exc.type == "pending-expired":
            raise Refused("redemption-expired", "the hold expired: the points and items are being returned",
                          state=EXPIRED) from None
        raise
    session.refresh(redemption)
    return redemption


def cancel(session: Session, redemption: Redemption, *, by: str, now: datetime | None = None) -> Redemption:
    """Called off: the hold is voided; points and items return (:func:`on_hold_resolved`)."""
    now = now or utcnow()
    still_held(redemption)
    ledger.transfer(session, Request(id=str(uuid.uuid5(CANCEL_NAMESPACE, redemption.id)),
                                     void_pending_id=redemption.id), by=by, now=now)
    session.refresh(redemption)
    return redemption


def on_hold_resolved(session: Session, hold, resolution: dict) -> None:
    """The ledger resolved a hold (``ledger.ON_RESOLVED``): a redemption's follows it."""
    if hold.code != CODE:
        return
    if resolution["phase"] == domain.POST:
        status = HANDED_OVER
    else:
        status = EXPIRED if resolution["reason"] == domain.EXPIRED else CANCELLED
    ended = session.execute(update(R).where(R.c.id == hold.id, R.c.status == HELD)
                            .values(status=status, resolved_at=resolution["at"], resolved_by=resolution["by"])
                            .returning(R.c.id)).scalar()
    if ended is None:  # a hold with the code but no redemption (moved by hand): nothing reserved
        return
    redemption = session.get(Redemption, hold.id)
    session.refresh(redemption)
    lines = lines_of(session, redemption.id)
    if status != HANDED_OVER:
        for line in lines:  # in item id order, as they were taken
            session.execute(update(ITEMS).where(ITEMS.c.id == line.item_id).values(stock=ITEMS.c.stock + line.quantity))
        limited = {item.id: item for item in session.scalars(select(Item).where(
            Item.id.in_([line.item_id for line in lines]), Item.monthly_limit.is_not(None)))}
        for line in lines:
            if line.item_id in limited:
                who = taker(limited[line.item_id].limit_per, redemption.resident, redemption.household)
                session.execute(update(T).where(T.c.item_id == line.item_id, T.c.taker == who,
                                                T.c.month == redemption.month)
                                .values(quantity=T.c.quantity - line.quantity))
    event = {HANDED_OVER: REDEMPTION_HANDED_OVER, CANCELLED: REDEMPTION_CANCELLED, EXPIRED: REDEMPTION_EXPIRED}[status]
    supermarket = session.get(Supermarket, redemption.supermarket_id)
    outbox.record(session, event, event_data(redemption, supermarket, lines) | {"by": resolution["by"]},
                  subject=redemption.id)


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------


def lines_of(session: Session, redemption_id: str) -> list[RedemptionLine]:
    return list(session.scalars(select(RedemptionLine).where(RedemptionLine.redemption_id == redemption_id)
                                .order_by(RedemptionLine.item_id)))


def event_data(redemption: Redemption, supermarket: Supermarket, lines: Iterable) -> dict:
    return {"redemption_id": redemption.id, "supermarket_id": supermarket.id, "supermarket": supermarket.name,
            "community": redemption.community, "resident": redemption.resident, "amount": redemption.amount,
            "pieces": sum(line.quantity for line in lines), "expires_at": aware(redemption.expires_at),
            "at": aware(redemption.at)}


def view(session: Session, redemption: Redemption, *, with_code: bool) -> dict:
    names = dict(session.execute(select(Item.id, Item.name).join(
        RedemptionLine, RedemptionLine.item_id == Item.id).where(RedemptionLine.redemption_id == redemption.id)).all())
    return {"id": redemption.id, "supermarket_id": redemption.supermarket_id, "community": redemption.community,
            "resident": redemption.resident, "household": redemption.household,
            "account_id": redemption.account_id, "amount": redemption.amount, "status": redemption.status,
            "code": redemption.code if with_code and redemption.status == HELD else None,
            "at": aware(redemption.at), "expires_at": aware(redemption.expires_at),
            "resolved_at": aware(redemption.resolved_at), "resolved_by": redemption.resolved_by,
            "lines": [{"item_id": line.item_id, "name": names.get(line.item_id), "quantity": line.quantity,
                       "price": line.price} for line in lines_of(session, redemption.id)]}


ledger.ON_RESOLVED.append(on_hold_resolved)


# --------------------------------------------------------------------------
# audit
# --------------------------------------------------------------------------


def discrepancies(session: Session) -> list[str]:
    """Every redemption agrees with its hold, and the monthly counts with the redemptions:
    ``held`` ↔ the hold is open; ``handed_over`` ↔ posted; ``cancelled`` / ``expired`` ↔
    voided (asked / timed out); each (item, taker, month) count is the pieces of the
    redemptions held or handed over. Empty: all sound."""
    from .tables import OpenHold, Transfer

    found: list[str] = []
    open_holds = set(session.scalars(select(OpenHold.pending_id)))
    resolutions = {t.pending_id: t for t in session.scalars(select(Transfer).where(Transfer.code == CODE,
                                                                                  Transfer.pending_id.is_not(None)))}
    holds = set(session.scalars(select(Transfer.id).where(Transfer.code == CODE, Transfer.phase == domain.PENDING)))
    counted: dict[tuple, int] = {}
    limited = {i.id: i for i in session.scalars(select(Item).where(Item.monthly_limit.is_not(None)))}
    for r in session.scalars(select(Redemption)):
        resolution = resolutions.get(r.id)
        want = {HELD: r.id in open_holds and resolution is None,
                HANDED_OVER: resolution is not None and resolution.phase == domain.POST,
                CANCELLED: resolution is not None and resolution.phase == domain.VOID
                and resolution.reason == domain.VOIDED,
                EXPIRED: resolution is not None and resolution.phase == domain.VOID
                and resolution.reason == domain.EXPIRED}
        if r.id not in holds or not want.get(r.status, False):
            found.append(f"redemption {r.id} is {r.status}, its hold is "
                         f"{'open' if r.id in open_holds else (resolution.phase if resolution else 'missing')}")
        if r.status in (HELD, HANDED_OVER):
            for line in lines_of(session, r.id):
                if line.item_id in limited:
                    key = (line.item_id, taker(limited[line.item_id].limit_per, r.resident, r.household), r.month)
                    counted[key] = counted.get(key, 0) + line.quantity
    for take in session.scalars(select(MonthlyTake)):
        if take.quantity != counted.pop((take.item_id, take.taker, take.month), 0):
            found.append(f"item {take.item_id}: {take.taker} took {take.quantity} in {take.month}, "
                         f"its redemptions say otherwise")
    found += [f"item {key[0]}: {key[1]} has redemptions in {key[2]} but no count" for key in counted]
    return found
