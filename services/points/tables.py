"""The ledger's tables: accounts with their running totals, immutable transfers, one
entry per account a transfer touches (the statement line, with the balance it left),
and the holds still open.

The database keeps the rules too, so that no code path can break them: totals are
never negative, an account that forbids it never has more debits than credits
(CHECK constraints), a transfer's amount is positive, and a hold is resolved at most
once (a unique ``pending_id``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)

from gridkit.db import declarative_base
from gridkit.outbox import ID, Inbox, Outbox

Base = declarative_base()
outbox = Outbox(Base.metadata)
inbox = Inbox(Base.metadata)

When = DateTime(timezone=True)
Points = BigInteger()
TransferId = String(36)  # a UUID in its canonical text form, chosen by the client
UserId = String(64)


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


class Account(Base):
    """Whose points, with the totals every transfer moves (TigerBeetle's four): the posted
    balance is ``credits_posted - debits_posted``; held points are ``debits_pending``."""

    __tablename__ = "accounts"
    id = Column(ID, primary_key=True, autoincrement=True)
    kind = Column(String(16), nullable=False)
    community = Column(String(64), nullable=False)
    # A user id (person), household id, supermarket id; "" for a community's pools.
    holder = Column(String(64), nullable=False, default="")
    # The household a person's points count towards (a household's total).
    household = Column(String(64))
    debits_must_not_exceed_credits = Column(Boolean, nullable=False)
    credits_must_not_exceed_debits = Column(Boolean, nullable=False)
    debits_pending = Column(Points, nullable=False, default=0)
    debits_posted = Column(Points, nullable=False, default=0)
    credits_pending = Column(Points, nullable=False, default=0)
    credits_posted = Column(Points, nullable=False, default=0)
    opened_at = Column(When, nullable=False)
    opened_by = Column(UserId)
    __table_args__ = (
        UniqueConstraint("community", "kind", "holder", name="uq_accounts_community_kind_holder"),
        Index("ix_accounts_household", "community", "household"),
        Index("ix_accounts_holder", "holder"),
        CheckConstraint("debits_pending >= 0 AND debits_posted >= 0 AND credits_pending >= 0 "
                        "AND credits_posted >= 0", name="totals_not_negative"),
        CheckConstraint("NOT debits_must_not_exceed_credits OR debits_pending + debits_posted <= credits_posted",
                        name="debits_within_credits"),
        CheckConstraint("NOT credits_must_not_exceed_debits OR credits_pending + credits_posted <= debits_posted",
                        name="credits_within_debits"),
    )


class Transfer(Base):
    """Immutable. ``phase``: ``single`` (posted at once), ``pending`` (a hold), ``post`` or
    ``void`` (the one resolution of the hold ``pending_id``)."""

    __tablename__ = "transfers"
    id = Column(TransferId, primary_key=True)
    phase = Column(String(8), nullable=False)
    debit_account_id = Column(ID, ForeignKey("accounts.id"), nullable=False)
    credit_account_id = Column(ID, ForeignKey("accounts.id"), nullable=False)
    amount = Column(Points, nullable=False)
    code = Column(String(32), nullable=False)
    source = Column(String(200), unique=True)  # each source (event) moves points at most once
    memo = Column(String(200))
    pending_id = Column(TransferId, ForeignKey("transfers.id"), unique=True)  # at most one resolution
    timeout_seconds = Column(Integer)  # a hold's, as the client asked
    expires_at = Column(When)  # a hold's: at + timeout
    reason = Column(String(8))  # a void's: voided (asked) or expired (the sweep)
    at = Column(When, nullable=False)
    by = Column(UserId)  # who asked (null: the ledger itself, e.g. a hold that expired)
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="two_accounts"),
        CheckConstraint("(phase IN ('post', 'void')) = (pending_id IS NOT NULL)", name="resolves_a_hold"),
    )


class Entry(Base):
    """A statement line: what one transfer did to one account, and the totals it left
    (written while the account's row was locked, so they are the running balance)."""

    __tablename__ = "entries"
    id = Column(ID, primary_key=True, autoincrement=True)
    account_id = Column(ID, ForeignKey("accounts.id"), nullable=False)
    transfer_id = Column(TransferId, ForeignKey("transfers.id"), nullable=False)
    side = Column(String(6), nullable=False)  # debit | credit
    phase = Column(String(8), nullable=False)
    code = Column(String(32), nullable=False)
    counterparty_id = Column(ID, nullable=False)
    amount = Column(Points, nullable=False)  # the transfer's amount (as posted, for a post)
    at = Column(When, nullable=False)
    balance = Column(Points, nullable=False)  # credits_posted - debits_posted, after
    debits_pending = Column(Points, nullable=False)  # after
    credits_pending = Column(Points, nullable=False)  # after
    __table_args__ = (Index("ix_entries_account", "account_id", "id"),)


class OpenHold(Base):
    """A pending transfer not yet posted or voided. Resolving it deletes the row first,
    so two resolutions (a post racing a void, two sweeps) cannot both go ahead; the
    sweep reads the expired ones here, never the whole history of transfers."""

    __tablename__ = "open_holds"
    pending_id = Column(TransferId, ForeignKey("transfers.id"), primary_key=True)
    expires_at = Column(When)
    __table_args__ = (Index("ix_open_holds_expires_at", "expires_at"),)


# --------------------------------------------------------------------------
# Earning: community settings, award rules and their caps, hygiene inspections,
# activities, manual awards and deductions
# --------------------------------------------------------------------------

HOUSEHOLD_OR_MEMBERS = ("household", "members")


class EarningSettings(Base):
    """A community's choices; a community without a row has the defaults."""

    __tablename__ = "earning_settings"
    community = Column(String(64), primary_key=True)
    # A person's account counts towards the household they are bound to (a household's total).
    pool_by_household = Column(Boolean, nullable=False, default=False)
    # A clean household's points go to the household's account, or to each member's.
    hygiene_to = Column(String(9), nullable=False, default="household")
    hygiene_pass_mark = Column(Integer, nullable=False, default=80)  # each of the three, out of 100
    # A manual award or deduction above this many points waits for a second admin.
    approval_threshold = Column(Points, nullable=False, default=100)
    expiry_months = Column(Integer)  # null: points never expire
    updated_at = Column(When)
    updated_by = Column(UserId)
    __table_args__ = (
        CheckConstraint("hygiene_to IN ('household', 'members')", name="hygiene_to_known"),
        CheckConstraint("expiry_months IS NULL OR expiry_months > 0", name="expiry_months_positive"),
    )


class AwardRule(Base):
    """When an event of this type, in this community, meets the condition: this many points
    to whom the event names, at most ``cap`` per person (or household) per ``period``."""

    __tablename__ = "award_rules"
    id = Column(String(36), primary_key=True)
    community = Column(String(64), nullable=False)
    event = Column(String(64), nullable=False)  # an event name without its version: dispatch.case.closed
    condition = Column(String(2000), nullable=False)  # JSON: {field: {op: value}}, every one must hold
    points = Column(Points, nullable=False)
    cap = Column(Points)  # null: no cap
    period = Column(String(5))  # day | week | month | year; with cap
    active = Column(Boolean, nullable=False, default=True)
    memo = Column(String(200))
    created_at = Column(When, nullable=False)
    created_by = Column(UserId)
    __table_args__ = (
        Index("ix_award_rules_community_event", "community", "event"),
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint("(cap IS NULL) = (period IS NULL) AND (cap IS NULL OR cap > 0)", name="cap_with_period"),
    )


class AwardTally(Base):
    """Points a rule gave one beneficiary in one period: the cap's count, locked while an
    award is weighed against it."""

    __tablename__ = "award_tallies"
    rule_id = Column(String(36), ForeignKey("award_rules.id"), primary_key=True)
    beneficiary = Column(String(80), primary_key=True)  # person:<user id> | household:<id>
    period = Column(String(10), primary_key=True)  # 2026-12, 2026-W49, 2026-12-07, 2026
    points = Column(Points, nullable=False, default=0)


class Inspection(Base):
    """A household's monthly hygiene results (清洁户 when passed): one per household and month."""

    __tablename__ = "inspections"
    id = Column(String(36), primary_key=True)
    community = Column(String(64), nullable=False)
    household = Column(String(64), nullable=False)
    month = Column(String(7), nullable=False)  # YYYY-MM
    personal = Column(Integer, nullable=False)
    household_score = Column(Integer, nullable=False)
    public = Column(Integer, nullable=False)
    passed = Column(Boolean, nullable=False)
    inspector = Column(UserId, nullable=False)
    at = Column(When, nullable=False)
    __table_args__ = (
        UniqueConstraint("community", "household", "month", name="uq_inspections_household_month"),
        Index("ix_inspections_month", "community", "month", "passed"),
    )


class Activity(Base):
    """A community activity (clean-up, reading club…) with places to sign up for (接龙报名)."""

    __tablename__ = "activities"
    id = Column(String(36), primary_key=True)
    community = Column(String(64), nullable=False)
    title = Column(String(200), nullable=False)
    places = Column(Integer, nullable=False)
    taken = Column(Integer, nullable=False, default=0)
    starts_at = Column(When, nullable=False)
    ends_at = Column(When, nullable=False)
    code = Column(String(8), nullable=False)  # shown at the door by the organiser
    organiser = Column(UserId, nullable=False)
    created_at = Column(When, nullable=False)
    __table_args__ = (
        Index("ix_activities_community", "community", "starts_at"),
        CheckConstraint("taken >= 0 AND taken <= places", name="within_places"),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
    )


class Signup(Base):
    __tablename__ = "signups"
    activity_id = Column(String(36), ForeignKey("activities.id"), primary_key=True)
    user_id = Column(UserId, primary_key=True)
    signed_up_at = Column(When, nullable=False)
    attended_at = Column(When)
    wrong_codes = Column(Integer, nullable=False, default=0)


class Adjustment(Base):
    """A manual award or deduction by a community admin, with its reason; above the
    community's threshold it waits for a second, different admin."""

    __tablename__ = "adjustments"
    id = Column(String(36), primary_key=True)  # chosen by the client: a retry is the same adjustment
    community = Column(String(64), nullable=False)
    account_id = Column(ID, ForeignKey("accounts.id"), nullable=False)
    direction = Column(String(6), nullable=False)  # award | deduct
    amount = Column(Points, nullable=False)
    reason = Column(String(200), nullable=False)
    state = Column(String(9), nullable=False)  # awaiting | done | rejected
    requested_by = Column(UserId, nullable=False)
    requested_at = Column(When, nullable=False)
    decided_by = Column(UserId)
    decided_at = Column(When)
    transfer_id = Column(TransferId)
    __table_args__ = (
        Index("ix_adjustments_community", "community", "state"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("direction IN ('award', 'deduct')", name="direction_known"),
    )


# --------------------------------------------------------------------------
# supermarkets (积分超市): catalogue, redemptions, the programme's settings
# --------------------------------------------------------------------------


class Supermarket(Base):
    """A points supermarket of a village or community, with its own ledger account
    (kind ``supermarket``, holder its id): what residents redeem lands there. Its
    keepers hold the role ``supermarket_keeper`` at scope ``supermarket:<id>``."""

    __tablename__ = "supermarkets"
    id = Column(ID, primary_key=True, autoincrement=True)
    community = Column(String(64), nullable=False, index=True)
    name = Column(String(100), nullable=False)
    # Its ledger account, opened in the transaction that opens it (holder: its id).
    account_id = Column(ID, ForeignKey("accounts.id"), unique=True)
    hold_minutes = Column(Integer, nullable=False)  # how long picked items wait for their hand-over
    opened_at = Column(When, nullable=False)
    opened_by = Column(UserId)


class Item(Base):
    """An item of a supermarket's catalogue. ``stock`` is what is on the shelf and not
    reserved: a redemption takes from it at once (a guarded UPDATE that never goes
    below zero, backed by a CHECK) and a cancelled or expired one puts it back."""

    __tablename__ = "items"
    id = Column(ID, primary_key=True, autoincrement=True)
    supermarket_id = Column(ID, ForeignKey("supermarkets.id"), nullable=False, index=True)
    name = Column(String(100), nullable=False)
    price = Column(Points, nullable=False)  # in points, per piece
    stock = Column(Integer, nullable=False)
    monthly_limit = Column(Integer)  # pieces per taker and month; null: none
    limit_per = Column(String(9), nullable=False, default="person")  # person | household
    active = Column(Boolean, nullable=False, default=True)
    __table_args__ = (
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        CheckConstraint("price > 0", name="price_positive"),
        CheckConstraint("monthly_limit IS NULL OR monthly_limit > 0", name="limit_positive"),
    )


class MonthlyTake(Base):
    """How many pieces of an item a taker (``person:<user id>`` or ``household:<id>``)
    has redeemed (held or handed over) in a month: the limit is a guarded UPDATE on
    this row, so two redemptions at once cannot both pass it."""

    __tablename__ = "monthly_takes"
    item_id = Column(ID, ForeignKey("items.id"), primary_key=True)
    taker = Column(String(80), primary_key=True)
    month = Column(String(7), primary_key=True)  # YYYY-MM, local time
    quantity = Column(Integer, nullable=False, default=0)
    __table_args__ = (CheckConstraint("quantity >= 0", name="take_not_negative"),)


class Redemption(Base):
    """A resident's basket: its points held in the ledger (a pending transfer whose id is
    the redemption's), its items reserved. ``held`` → ``handed_over`` (the keeper saw the
    code: the hold is posted) or ``cancelled`` / ``expired`` (the hold is voided, the
    stock returns). The status follows the hold in the same transaction."""

    __tablename__ = "redemptions"
    id = Column(TransferId, primary_key=True)  # the client's, and the ledger hold's id
    supermarket_id = Column(ID, ForeignKey("supermarkets.id"), nullable=False)
    community = Column(String(64), nullable=False)
    resident = Column(UserId, nullable=False)
    household = Column(String(64))
    account_id = Column(ID, ForeignKey("accounts.id"), nullable=False)  # whose points (person or household)
    amount = Column(Points, nullable=False)
    month = Column(String(7), nullable=False)
    code = Column(String(8), nullable=False, unique=True)  # the hand-over code the resident shows
    status = Column(String(12), nullable=False)
    at = Column(When, nullable=False)
    expires_at = Column(When, nullable=False)
    resolved_at = Column(When)
    resolved_by = Column(UserId)
    __table_args__ = (
        Index("ix_redemptions_resident", "resident", "at"),
        Index("ix_redemptions_supermarket", "supermarket_id", "status", "at"),
    )


class RedemptionLine(Base):
    __tablename__ = "redemption_lines"
    redemption_id = Column(TransferId, ForeignKey("redemptions.id"), primary_key=True)
    item_id = Column(ID, ForeignKey("items.id"), primary_key=True)
    quantity = Column(Integer, nullable=False)
    price = Column(Points, nullable=False)  # per piece, when redeemed
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)


class Programme(Base):
    """A community's settings for the programme: whose points a redemption spends
    (``person`` or ``household``, where the community pools by household), and the
    number of households it counts (from its register; when unset, the households
    known from grids' resident bindings)."""

    __tablename__ = "programmes"
    community = Column(String(64), primary_key=True)
    redeem_from = Column(String(9), nullable=False, default="person")
    households = Column(Integer)


# --------------------------------------------------------------------------
# What points knows of grids (households.py, fed by grids' events): the community of each
# grid, and who is bound to which household; earning and the supermarkets read it
# --------------------------------------------------------------------------


class KnownGrid(Base):
    """grids' grids, only for the community each is in (a resident's community)."""

    __tablename__ = "known_grids"
    id = Column(Integer, primary_key=True, autoincrement=False)
    community = Column(String(64))  # the grid's division when it is a community
    version = Column(Integer, nullable=False)


class Resident(Base):
    """A person bound to a household (grids' 人屋关联): whose points count towards it, who
    hears of its awards, whose redemptions count against its monthly limits."""

    __tablename__ = "residents"
    user_id = Column(UserId, primary_key=True)
    household = Column(String(64), primary_key=True)
    grid_id = Column(Integer, nullable=False)
    since = Column(When, nullable=False)
    __table_args__ = (
        Index("ix_residents_household", "household"),
        Index("ix_residents_grid_id", "grid_id"),  # a community's households (the programme's figures)
    )
