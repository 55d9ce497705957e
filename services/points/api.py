"""HTTP door into the ledger: accounts, transfers (holds, posts, voids), balances and
statements. Every move goes through :mod:`points.ledger`, as the other doors do.

Who may do what:

* move points (``POST /transfers``) and open accounts: a community admin for the
  accounts of their community (scope ``division:<community>``), a county admin and a
  sysadmin for any;
* read an account, its statement, a transfer, a household's total: the same, plus
  auditors (read only), plus the holder of a person's account (their own statement);
* ``GET /me/accounts``: anyone signed in, their own person accounts.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from contextlib import contextmanager

from marshmallow import RAISE, ValidationError, fields, validate, validates_schema
from sqlalchemy import select
from sqlalchemy.orm import Session

from gridkit.auth import Principal, authenticated, current_principal, require_roles
from gridkit.pagination import Cursor, RowId, paginate
from gridkit.problems import Forbidden, Invalid, NotFound, Problem
from gridkit.schemas import Id, Schema
from gridkit.service import runtime
from gridkit.web import Blueprint, Page

from . import domain, ledger
from .tables import Account, Entry, aware

blp = Blueprint("points", __name__, description="The points ledger: accounts, transfers with holds (pending → "
                "posted or voided), balances and statements.")

MOVERS = ("community_admin", "county_admin", "sysadmin")
READERS = (*MOVERS, "auditor")
CODE = validate.Regexp(r"^[a-z][a-z0-9_.-]{0,31}$", error="lower-case letters, digits, _ . - (at most 32)")
PLACE = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", error="letters, digits, . _ - only (at most 64)")
HOLDER = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", error="letters, digits, . _ : - only (at most 64)")
UUID_TEXT = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
TRANSFER_ID = validate.Regexp(UUID_TEXT, error="a UUID (8-4-4-4-12 hexadecimal digits)")
ACCOUNTS = Cursor(RowId())  # accounts in id order
LINES = Cursor(RowId())  # statement lines, newest first: the last line's id


class Whole(fields.Integer):
    """A JSON integer from ``lo`` to ``hi``. Fractions (``10.5``, even ``10.0``), text and
    booleans are refused, as are numbers out of range."""

    default_error_messages = {"invalid": "Not a whole number: a JSON integer."}

    def __init__(self, lo: int, hi: int, **kwargs):
        super().__init__(strict=True, validate=validate.Range(lo, hi, error=f"a whole number from {lo} to {hi}"),
                         **kwargs)

    def _validated(self, value):
        if type(value) is int:
            return value
        raise self.make_error("invalid", input=value)


def Amount(**kwargs) -> Whole:  # noqa: N802 - a field, named like the others
    """Points: from 1 to :data:`domain.MAX_AMOUNT` (zero and negative amounts are refused)."""
    return Whole(1, domain.MAX_AMOUNT, **kwargs)


# --------------------------------------------------------------------------
# schemas
# --------------------------------------------------------------------------


class AccountIn(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(domain.ACCOUNT_KINDS))
    community = fields.String(required=True, validate=PLACE, metadata={"description": "The community's division code"})
    holder = fields.String(load_default=None, validate=HOLDER, metadata={
        "description": "A user id (person), household id or supermarket id; none for issuing and expiry"})
    household = fields.String(load_default=None, validate=HOLDER, metadata={
        "description": "A person's account: the household its points count towards"})


class AccountOut(Schema):
    id = fields.Integer()
    kind = fields.String()
    community = fields.String()
    holder = fields.String(allow_none=True)
    household = fields.String(allow_none=True)
    balance = fields.Integer(metadata={"description": "Posted: credits - debits"})
    available = fields.Integer(metadata={"description": "What may be spent: the balance less what is held"})
    held = fields.Integer(metadata={"description": "Pending debits: held until posted or voided"})
    incoming = fields.Integer(metadata={"description": "Pending credits"})
    debits_posted = fields.Integer()
    credits_posted = fields.Integer()
    debits_must_not_exceed_credits = fields.Boolean()
    credits_must_not_exceed_debits = fields.Boolean()
    opened_at = fields.DateTime()


class AccountPage(Schema):
    items = fields.List(fields.Nested(AccountOut))
    next_cursor = fields.String(allow_none=True)


class AccountQuery(Page):
    cursor = ACCOUNTS.field()
    community = fields.String(validate=PLACE)
    kind = fields.String(validate=validate.OneOf(domain.ACCOUNT_KINDS))
    holder = fields.String(validate=HOLDER)
    household = fields.String(validate=HOLDER)


class TransferIn(Schema):
    id = fields.String(required=True, validate=TRANSFER_ID, metadata={
        "description": "Chosen by the client (a UUID): sending it again is safe. The same id with the same "
                       "fields answers the original transfer (200); with other fields, a 409 naming them"})
    debit_account_id = Id(metadata={"description": "Points leave this account (a new transfer)"})
    credit_account_id = Id(metadata={"description": "Points reach this account (a new transfer)"})
    amount = Amount(metadata={"description": "Whole points; a post may take less than its hold"})
    code = fields.String(validate=CODE, metadata={"description": "What for: award, redemption, adjustment, …"})
    pending = fields.Boolean(load_default=False, metadata={
        "description": "A hold: the points stay in the debit account, unspendable, until posted or voided"})
    timeout_seconds = Whole(1, domain.MAX_TIMEOUT_SECONDS, metadata={
        "description": "A hold is voided by itself this long after it was made, unless posted first"})
    post_pending_id = fields.String(validate=TRANSFER_ID, metadata={"description": "Post this hold"})
    void_pending_id = fields.String(validate=TRANSFER_ID, metadata={"description": "Void this hold"})
    source = fields.String(validate=validate.Length(1, 200), metadata={
        "description": "What caused it (e.g. a source event's id): at most one transfer per source"})
    memo = fields.String(validate=validate.Length(1, 200))

    @validates_schema
    def _one_kind(self, data, **kwargs):
        if data.get("post_pending_id") and data.get("void_pending_id"):
            raise ValidationError("a transfer posts or voids a hold, not both", "void_pending_id")


class TransferOut(Schema):
    id = fields.String()
    phase = fields.String(metadata={"description": "single (posted at once), pending (a hold), post or void"})
    debit_account_id = fields.Integer()
    credit_account_id = fields.Integer()
    amount = fields.Integer()
    code = fields.String()
    source = fields.String(allow_none=True)
    memo = fields.String(allow_none=True)
    pending_id = fields.String(allow_none=True, metadata={"description": "The hold a post or void resolves"})
    timeout_seconds = fields.Integer(allow_none=True)
    expires_at = fields.DateTime(allow_none=True)
    reason = fields.String(allow_none=True, metadata={"description": "A void's: voided, or expired (its timeout)"})
    at = fields.DateTime()
    by = fields.String(allow_none=True)


class LineOut(Schema):
    id = fields.Integer(metadata={"description": "The line's place in the ledger (increasing)"})
    transfer_id = fields.String()
    at = fields.DateTime()
    phase = fields.String()
    code = fields.String()
    side = fields.String(metadata={"description": "debit (points left) or credit (points came)"})
    counterparty_id = fields.Integer()
    amount = fields.Integer(metadata={"description": "The transfer's amount"})
    change = fields.Integer(metadata={"description": "What it did to the balance (0 for a hold or a void)"})
    balance = fields.Integer(metadata={"description": "The balance after it"})
    held = fields.Integer(metadata={"description": "Points held after it"})
    available = fields.Integer(metadata={"description": "What could be spent after it"})


class StatementOut(Schema):
    account = fields.Nested(AccountOut)
    items = fields.List(fields.Nested(LineOut))
    next_cursor = fields.String(allow_none=True)


class StatementQuery(Page):
    cursor = LINES.field()


class HouseholdOut(Schema):
    community = fields.String()
    household = fields.String()
    accounts = fields.List(fields.Integer())
    balance = fields.Integer()
    available = fields.Integer()
    held = fields.Integer()


# --------------------------------------------------------------------------
# scope
# --------------------------------------------------------------------------


def communities(principal: Principal, roles: tuple[str, ...]) -> Callable[[str], bool]:
    """Which communities' accounts ``principal`` reaches with ``roles``."""
    if principal.has_role(*(r for r in roles if r in ("sysadmin", "county_admin", "auditor"))):
        return lambda community: True
    mine = {g.scope_id for g in principal.grants_for("community_admin") if g.scope_type == "division"} \
        if "community_admin" in roles else set()
    return mine.__contains__


def may_read(principal: Principal, account: dict) -> bool:
    return communities(principal, READERS)(account["community"]) \
        or (account["kind"] == domain.PERSON and account["holder"] == principal.subject)


def mover(principal: Principal) -> ledger.Authorize:
    reach = communities(principal, MOVERS)

    def authorize(debit: dict, credit: dict) -> None:
        if not (reach(debit["community"]) and reach(credit["community"])):
            raise domain.NotPermitted("your role and scope do not reach both accounts")

    return authorize


@contextmanager
def problems():
    """The ledger's refusals as problems (RFC 7807)."""
    try:
        yield
    except domain.NotPermitted as exc:
        raise Forbidden(exc.reason) from None
    except domain.Invalid as exc:
        raise Invalid({exc.field: [exc.reason]}) from None
    except domain.Refused as exc:
        raise Problem(409, exc.reason, type=exc.type, title="Conflict", **exc.extra) from None


def readable_account(session: Session, account_id: int, principal: Principal) -> Account:
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound("account", account_id)
    if not may_read(principal, ledger.account_view(account)):
        raise Forbidden("this account is not yours, nor in your scope")
    return account


# --------------------------------------------------------------------------
# routes
# --------------------------------------------------------------------------


@blp.post("/accounts")
@require_roles(*MOVERS)
@blp.arguments(AccountIn)
@blp.response(201, AccountOut)
@blp.alt_response(200, schema=AccountOut, success=True, description="It was open already: that account")
def open_account(body):
    """Open an account (a person's, a household's, a supermarket's, or the community's
    issuing pool or expiry sink). Opening one that exists answers it (200)."""
    principal = current_principal()
    if not communities(principal, MOVERS)(body["community"]):
        raise Forbidden("this community is outside your scope")
    with problems(), runtime().db.transaction() as session:
        account, created = ledger.open_account(session, by=principal.subject, **body)
        view = ledger.account_view(account)
    return view if created else (view, 200)


@blp.get("/accounts")
@require_roles(*READERS)
@blp.arguments(AccountQuery, location="query", unknown=RAISE)
@blp.response(200, AccountPage)
def list_accounts(query):
    """Accounts in your scope, in the order they were opened."""
    principal = current_principal()
    reach = communities(principal, READERS)
    stmt = select(Account)
    if "community" in query:
        if not reach(query["community"]):
            raise Forbidden("this community is outside your scope")
        stmt = stmt.where(Account.community == query["community"])
    elif not principal.has_role("sysadmin", "county_admin", "auditor"):
        stmt = stmt.where(Account.community.in_(sorted(
            g.scope_id for g in principal.grants_for("community_admin") if g.scope_type == "division")))
    for name in ("kind", "holder", "household"):
        if name in query:
            stmt = stmt.where(getattr(Account, name) == query[name])
    with runtime().db.transaction() as session:
        rows, cursor = paginate(session, stmt, [Account.id], query.get("cursor"), query["limit"], ACCOUNTS)
        return {"items": [ledger.account_view(a) for a in rows], "next_cursor": cursor}


@blp.get("/me/accounts")
@authenticated
@blp.response(200, AccountPage)
def my_accounts():
    """My own points, in every community I have an account in."""
    principal = current_principal()
    with runtime().db.transaction() as session:
        rows = session.scalars(select(Account).where(Account.kind == domain.PERSON,
                                                     Account.holder == principal.subject)
                               .order_by(Account.id)).all()
        return {"items": [ledger.account_view(a) for a in rows], "next_cursor": None}


@blp.get("/accounts/<int:account_id>")
@authenticated
@blp.response(200, AccountOut)
def get_account(account_id):
    with runtime().db.transaction() as session:
        return ledger.account_view(readable_account(session, account_id, current_principal()))


@blp.get("/accounts/<int:account_id>/statement")
@authenticated
@blp.arguments(StatementQuery, location="query", unknown=RAISE)
@blp.response(200, StatementOut)
def statement(query, account_id):
    """The account's lines, newest first, each with the balance it left (a running balance
    that needs no sum: it was written with the line)."""
    with runtime().db.transaction() as session:
        account = readable_account(session, account_id, current_principal())
        lines, cursor = paginate(session, select(Entry).where(Entry.account_id == account_id), [Entry.id],
                                 query.get("cursor"), query["limit"], LINES, descending=True)
        return {"account": ledger.account_view(account), "items": [line_view(e) for e in lines],
                "next_cursor": cursor}


def line_view(entry: Entry) -> dict:
    posts = entry.phase in (domain.SINGLE, domain.POST)
    change = (entry.amount if entry.side == "credit" else -entry.amount) if posts else 0
    return {"id": entry.id, "transfer_id": entry.transfer_id, "at": aware(entry.at), "phase": entry.phase,
            "code": entry.code, "side": entry.side, "counterparty_id": entry.counterparty_id,
            "amount": entry.amount, "change": change, "balance": entry.balance, "held": entry.debits_pending,
            "available": entry.balance - entry.debits_pending}


@blp.get("/communities/<string:community>/households/<string:household>")
@require_roles(*READERS)
@blp.response(200, HouseholdOut)
def household(community, household):
    """A household's points: its own account's and its members' together."""
    for name, value, rule in (("community", community, PLACE), ("household", household, HOLDER)):
        try:
            rule(value)
        except ValidationError as exc:
            raise Invalid({name: exc.messages}) from None  # type: ignore[dict-item]
    if not communities(current_principal(), READERS)(community):
        raise Forbidden("this community is outside your scope")
    with runtime().db.transaction() as session:
        return ledger.household_total(session, community, household)


@blp.post("/transfers")
@require_roles(*MOVERS)
@blp.arguments(TransferIn)
@blp.response(201, TransferOut)
@blp.alt_response(200, schema=TransferOut, success=True,
                  description="The same id and fields again: the original transfer; nothing moved")
def make_transfer(body):
    """Move points: at once, or held (``pending``) until a later transfer posts it
    (``post_pending_id``, at most the held amount) or voids it (``void_pending_id``);
    a hold with ``timeout_seconds`` is voided by itself. The id is the client's: the same
    request again answers the original (200) and moves nothing."""
    principal = current_principal()
    body["id"] = str(uuid.UUID(body["id"]))
    for name in ("post_pending_id", "void_pending_id"):
        if body.get(name):
            body[name] = str(uuid.UUID(body[name]))
    request = domain.Request(**body)
    with problems():
        outcome = ledger.submit(runtime().db, request, by=principal.subject, authorize=mover(principal))
    return outcome.transfer if outcome.created else (outcome.transfer, 200)


@blp.get("/transfers/<string:transfer_id>")
@authenticated
@blp.response(200, TransferOut)
def get_transfer(transfer_id):
    if not UUID_TEXT.match(transfer_id):
        raise NotFound("transfer", transfer_id)
    principal = current_principal()
    with runtime().db.transaction() as session:
        found = ledger.find_transfer(session, str(uuid.UUID(transfer_id)))
        if found is None:
            raise NotFound("transfer", transfer_id)
        sides = [session.get(Account, found[k]) for k in ("debit_account_id", "credit_account_id")]
        if not any(may_read(principal, ledger.account_view(a)) for a in sides):
            raise Forbidden("neither account is yours, nor in your scope")
        return found
