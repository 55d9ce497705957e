"""HTTP door into the points supermarkets: supermarkets and their catalogue, redemptions
(hold → hand-over code → posted; cancelled or expired → points and stock return), the
programme's settings, figures and leaderboards. Every change goes through
:mod:`points.supermarkets` and :mod:`points.redemptions`.

Who may do what:

* open a supermarket, set a community's programme: its community admin
  (``division:<community>``), a county admin, a sysadmin;
* the catalogue, hand-overs, a supermarket's redemptions: those, and the supermarket's
  keepers (``supermarket_keeper`` at ``supermarket:<id>``); a keeper of another
  supermarket is refused (403) before anything is looked up;
* redeem, and see or cancel one's own redemptions: anyone signed in (a resident);
* the programme's figures: the community's admins, county admins, auditors, sysadmins;
  leaderboards: anyone signed in.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager

from marshmallow import RAISE, ValidationError, fields, validate
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gridkit.auth import Principal, authenticated, current_principal, require_roles
from gridkit.pagination import Cursor, Moment, Text, paginate
from gridkit.problems import Forbidden, Invalid, NotFound
from gridkit.schemas import Id, Schema
from gridkit.service import runtime
from gridkit.web import Blueprint, Page

from . import figures, redemptions, supermarkets
from .api import PLACE, TRANSFER_ID, Amount, Whole, problems
from .redemptions import Line
from .supermarkets import Unknown, administers, runs
from .tables import Item, Redemption, Supermarket, aware, utcnow

blp = Blueprint("points-supermarkets", __name__, url_prefix="", description="Points supermarkets (积分超市): "
                "catalogue, redemptions with a hand-over code, the programme's figures and leaderboards.")

ADMINS = ("community_admin", "county_admin", "sysadmin")
FIGURE_READERS = (*ADMINS, "auditor")
MONTH = validate.Regexp(r"^\d{4}-(0[1-9]|1[0-2])$", error="a month: YYYY-MM")
REDEMPTIONS = Cursor(Moment(), Text(36))  # newest first: (at, id)


# --------------------------------------------------------------------------
# schemas
# --------------------------------------------------------------------------


class SupermarketIn(Schema):
    community = fields.String(required=True, validate=PLACE, metadata={"description": "The community's division code"})
    name = fields.String(required=True, validate=validate.Length(1, 100))
    hold_minutes = Whole(1, supermarkets.MAX_HOLD_MINUTES, load_default=supermarkets.DEFAULT_HOLD_MINUTES, metadata={
        "description": "How long picked items wait for their hand-over before points and items return"})


class ItemIn(Schema):
    name = fields.String(required=True, validate=validate.Length(1, 100))
    price = Amount(required=True, metadata={"description": "Points per piece"})
    stock = Whole(0, supermarkets.MAX_STOCK, load_default=0)
    monthly_limit = Whole(1, supermarkets.MAX_STOCK, allow_none=True, load_default=None, metadata={
        "description": "Pieces per person (or household) and month; null: no limit"})
    limit_per = fields.String(load_default="person", validate=validate.OneOf(supermarkets.TAKERS))


class ItemChange(Schema):
    name = fields.String(validate=validate.Length(1, 100))
    price = Amount()
    monthly_limit = Whole(1, supermarkets.MAX_STOCK, allow_none=True)
    limit_per = fields.String(validate=validate.OneOf(supermarkets.TAKERS))
    active = fields.Boolean(metadata={"description": "Offered; a withdrawn item cannot be redeemed"})


class Restock(Schema):
    quantity = Whole(-supermarkets.MAX_STOCK, supermarkets.MAX_STOCK, required=True, metadata={
        "description": "Pieces put on the shelf (negative: taken off, never below what is left)"})


class ItemOut(Schema):
    id = fields.Integer()
    supermarket_id = fields.Integer()
    name = fields.String()
    price = fields.Integer()
    stock = fields.Integer(metadata={"description": "On the shelf and not reserved"})
    monthly_limit = fields.Integer(allow_none=True)
    limit_per = fields.String()
    active = fields.Boolean()


class SupermarketOut(Schema):
    id = fields.Integer()
    community = fields.String()
    name = fields.String()
    account_id = fields.Integer(metadata={"description": "Its ledger account (kind supermarket)"})
    hold_minutes = fields.Integer()
    opened_at = fields.DateTime()
    items = fields.List(fields.Nested(ItemOut))


class SupermarketList(Schema):
    items = fields.List(fields.Nested(SupermarketOut))


class BasketLineIn(Schema):
    item_id = Id(required=True)
    quantity = Whole(1, redemptions.MAX_PIECES, required=True)


class RedemptionIn(Schema):
    id = fields.String(required=True, validate=TRANSFER_ID, metadata={
        "description": "Chosen by the app (a UUID): sending it again answers the first redemption (200)"})
    lines = fields.List(fields.Nested(BasketLineIn), required=True,
                        validate=validate.Length(1, redemptions.MAX_LINES))


class BasketLineOut(Schema):
    item_id = fields.Integer()
    name = fields.String(allow_none=True)
    quantity = fields.Integer()
    price = fields.Integer(metadata={"description": "Points per piece when redeemed"})


class RedemptionOut(Schema):
    id = fields.String()
    supermarket_id = fields.Integer()
    community = fields.String()
    resident = fields.String()
    household = fields.String(allow_none=True)
    account_id = fields.Integer(metadata={"description": "Whose points: the person's or the household's account"})
    amount = fields.Integer()
    status = fields.String(metadata={"description": "held, handed_over, cancelled or expired"})
    code = fields.String(allow_none=True, metadata={
        "description": "The hand-over code to show the keeper: to the resident only, while held"})
    at = fields.DateTime()
    expires_at = fields.DateTime()
    resolved_at = fields.DateTime(allow_none=True)
    resolved_by = fields.String(allow_none=True)
    lines = fields.List(fields.Nested(BasketLineOut))


class RedemptionPage(Schema):
    items = fields.List(fields.Nested(RedemptionOut))
    next_cursor = fields.String(allow_none=True)


class RedemptionQuery(Page):
    cursor = REDEMPTIONS.field()
    status = fields.String(validate=validate.OneOf(redemptions.STATUSES))


class HandOverIn(Schema):
    code = fields.String(required=True, validate=validate.Length(1, 20), metadata={
        "description": "The code the resident shows (case, spaces and dashes do not matter)"})


class ProgrammeIn(Schema):
    redeem_from = fields.String(validate=validate.OneOf(supermarkets.TAKERS), metadata={
        "description": "Whose points a redemption spends: the person's, or the household's"})
    households = Whole(1, 10**8, metadata={"description": "All households of the community (its register)"})


class ProgrammeOut(Schema):
    community = fields.String()
    redeem_from = fields.String()
    households = fields.Integer(allow_none=True)


class FiguresOut(Schema):
    community = fields.String(allow_none=True)
    issued = fields.Integer(metadata={"description": "Points paid out of the issuing pool"})
    returned = fields.Integer(metadata={"description": "Points taken back into it (deductions)"})
    redeemed = fields.Integer(metadata={"description": "Points spent in the supermarkets (handed over)"})
    held = fields.Integer(metadata={"description": "Points held for redemptions not yet handed over"})
    outstanding = fields.Integer(metadata={"description": "Points residents and households hold"})
    households = fields.Integer(metadata={"description": "All households (register, else those grids bound)"})
    participating_households = fields.Integer(metadata={"description": "Households that earned points"})
    share = fields.Float(allow_none=True, metadata={"description": "participating / all households"})
    supermarkets = fields.Integer()
    handed_over = fields.Integer(metadata={"description": "Redemptions handed over"})
    turnover = fields.List(fields.Dict(), metadata={"description": "Per supermarket: redemptions and points"})


class CountyFiguresOut(Schema):
    county = fields.Nested(FiguresOut)
    communities = fields.List(fields.Nested(FiguresOut))


class FiguresQuery(Schema):
    month = fields.String(validate=MONTH, metadata={"description": "Turnover in this month (default: ever)"})


class BoardQuery(Schema):
    month = fields.String(validate=MONTH, metadata={"description": "Default: this month"})
    board = fields.String(load_default="households", validate=validate.OneOf(figures.BOARDS))
    code = fields.String(validate=validate.Length(1, 32), metadata={
        "description": "Only points moved with this code (e.g. a volunteer service's)"})
    limit = Whole(1, 100, load_default=20)


class BoardRow(Schema):
    rank = fields.Integer()
    holder = fields.String(metadata={"description": "A household id, or a person's user id"})
    points = fields.Integer()


class BoardOut(Schema):
    community = fields.String()
    month = fields.String()
    board = fields.String()
    items = fields.List(fields.Nested(BoardRow))


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


@contextmanager
def shop_problems():
    with problems():
        try:
            yield
        except Unknown as exc:
            raise NotFound(exc.what, exc.key) from None


def item_view(item: Item) -> dict:
    return {name: getattr(item, name) for name in ("id", "supermarket_id", "name", "price", "stock", "monthly_limit",
                                                   "limit_per", "active")}


def supermarket_view(session, supermarket: Supermarket, *, all_items: bool) -> dict:
    query = select(Item).where(Item.supermarket_id == supermarket.id).order_by(Item.id)
    if not all_items:
        query = query.where(Item.active.is_(True))
    return {"id": supermarket.id, "community": supermarket.community, "name": supermarket.name,
            "account_id": supermarket.account_id, "hold_minutes": supermarket.hold_minutes,
            "opened_at": aware(supermarket.opened_at), "items": [item_view(i) for i in session.scalars(query)]}


def run_by_caller(session, supermarket_id: int, principal: Principal) -> Supermarket:
    """The supermarket, if the caller keeps it or administers its community; a keeper of
    another supermarket is refused whatever the id (403), before anything is read."""
    if not principal.has_role(*ADMINS) and not supermarkets.keeps(principal, supermarket_id):
        raise Forbidden("you do not keep this supermarket")
    supermarket = supermarkets.get_supermarket(session, supermarket_id)
    if not runs(principal, supermarket):
        raise Forbidden("this supermarket is outside your scope")
    return supermarket


def check_place(community: str) -> None:
    try:
        PLACE(community)
    except ValidationError as exc:
        raise Invalid({"community": exc.messages}) from None  # type: ignore[dict-item]


def page_of_redemptions(session, query, args: dict, *, with_code: bool) -> dict:
    if "status" in args:
        query = query.where(Redemption.status == args["status"])
    rows, cursor = paginate(session, query, [Redemption.at, Redemption.id], args.get("cursor"), args["limit"],
                            REDEMPTIONS, descending=True)
    return {"items": [redemptions.view(session, r, with_code=with_code) for r in rows], "next_cursor": cursor}


# --------------------------------------------------------------------------
# supermarkets and catalogue
# --------------------------------------------------------------------------


@blp.post("/supermarkets")
@require_roles(*ADMINS)
@blp.arguments(SupermarketIn)
@blp.response(201, SupermarketOut)
def open_supermarket(body):
    """Open a points supermarket in a community, with its ledger account."""
    principal = current_principal()
    if not administers(principal, body["community"]):
        raise Forbidden("this community is outside your scope")
    with shop_problems(), runtime().db.transaction() as session:
        supermarket = supermarkets.open_supermarket(session, by=principal.subject, **body)
        return supermarket_view(session, supermarket, all_items=True)


@blp.get("/supermarkets")
@authenticated
@blp.arguments(Schema.from_dict({"community": fields.String(validate=PLACE)})(), location="query", unknown=RAISE)
@blp.response(200, SupermarketList)
def list_supermarkets(query):
    """Supermarkets (of a community), each with what it offers."""
    with runtime().db.transaction() as session:
        stmt = select(Supermarket).order_by(Supermarket.id)
        if "community" in query:
            stmt = stmt.where(Supermarket.community == query["community"])
        return {"items": [supermarket_view(session, s, all_items=False) for s in session.scalars(stmt)]}


@blp.get("/supermarkets/<int:supermarket_id>")
@authenticated
@blp.response(200, SupermarketOut)
def get_supermarket(supermarket_id):
    """A supermarket and its catalogue (withdrawn items too, for those who run it)."""
    principal = current_principal()
    with shop_problems(), runtime().db.transaction() as session:
        supermarket = supermarkets.get_supermarket(session, supermarket_id)
        return supermarket_view(session, supermarket, all_items=runs(principal, supermarket))


@blp.post("/supermarkets/<int:supermarket_id>/items")
@authenticated
@blp.arguments(ItemIn)
@blp.response(201, ItemOut)
def add_item(body, supermarket_id):
    with shop_problems(), runtime().db.transaction() as session:
        supermarket = run_by_caller(session, supermarket_id, current_principal())
        return item_view(supermarkets.add_item(session, supermarket, **body))


@blp.patch("/supermarkets/<int:supermarket_id>/items/<int:item_id>")
@authenticated
@blp.arguments(ItemChange)
@blp.response(200, ItemOut)
def change_item(body, supermarket_id, item_id):
    """Name, price, monthly limit, offered or withdrawn. Stock changes by restocking."""
    with shop_problems(), runtime().db.transaction() as session:
        supermarket = run_by_caller(session, supermarket_id, current_principal())
        item = supermarkets.get_item(session, supermarket, item_id)
        return item_view(supermarkets.change_item(session, item, **body))


@blp.post("/supermarkets/<int:supermarket_id>/items/<int:item_id>/restock")
@authenticated
@blp.arguments(Restock)
@blp.response(200, ItemOut)
def restock(body, supermarket_id, item_id):
    with shop_problems(), runtime().db.transaction() as session:
        supermarket = run_by_caller(session, supermarket_id, current_principal())
        item = supermarkets.get_item(session, supermarket, item_id)
        return item_view(supermarkets.restock(session, item, body["quantity"]))


# --------------------------------------------------------------------------
# redemptions
# --------------------------------------------------------------------------


@blp.post("/supermarkets/<int:supermarket_id>/redemptions")
@authenticated
@blp.arguments(RedemptionIn)
@blp.response(201, RedemptionOut)
@blp.alt_response(200, schema=RedemptionOut, success=True,
                  description="The same id and basket again: the first redemption; nothing moved")
def redeem(body, supermarket_id):
    """Pick items: the points are held and the items reserved, at once; the answer carries
    the hand-over code to show the keeper. Sent again with the same id, it answers the same."""
    principal = current_principal()
    lines = [Line(line["item_id"], line["quantity"]) for line in body["lines"]]
    redemption_id = str(uuid.UUID(body["id"]))
    db = runtime().db
    for attempt in (1, 2):  # the same id racing itself: the second finds the first
        try:
            with shop_problems(), db.transaction() as session:
                supermarket = supermarkets.get_supermarket(session, supermarket_id)
                redemption, created = redemptions.redeem(session, redemption_id=redemption_id,
                                                         supermarket=supermarket, resident=principal.subject,
                                                         lines=lines)
                view = redemptions.view(session, redemption, with_code=True)
            return view if created else (view, 200)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@blp.get("/supermarkets/<int:supermarket_id>/redemptions")
@authenticated
@blp.arguments(RedemptionQuery, location="query", unknown=RAISE)
@blp.response(200, RedemptionPage)
def supermarket_redemptions(args, supermarket_id):
    """The supermarket's redemptions, newest first (no codes: the resident shows hers)."""
    with shop_problems(), runtime().db.transaction() as session:
        run_by_caller(session, supermarket_id, current_principal())
        return page_of_redemptions(session, select(Redemption).where(Redemption.supermarket_id == supermarket_id),
                                   args, with_code=False)


@blp.post("/supermarkets/<int:supermarket_id>/hand-overs")
@authenticated
@blp.arguments(HandOverIn)
@blp.response(200, RedemptionOut)
def hand_over(body, supermarket_id):
    """The keeper types the code the resident shows: the items are handed over and the
    held points spent. A code used already, expired or of another supermarket is refused."""
    principal = current_principal()
    with shop_problems(), runtime().db.transaction() as session:
        supermarket = run_by_caller(session, supermarket_id, principal)
        redemption = redemptions.find_by_code(session, supermarket, body["code"])
        redemptions.hand_over(session, redemption, by=principal.subject)
        return redemptions.view(session, redemption, with_code=False)


@blp.post("/supermarkets/<int:supermarket_id>/redemptions/<string:redemption_id>/cancel")
@authenticated
@blp.response(200, RedemptionOut)
def keeper_cancels(supermarket_id, redemption_id):
    principal = current_principal()
    with shop_problems(), runtime().db.transaction() as session:
        run_by_caller(session, supermarket_id, principal)
        redemption = session.get(Redemption, redemption_id)
        if redemption is None or redemption.supermarket_id != supermarket_id:
            raise NotFound("redemption", redemption_id)
        redemptions.cancel(session, redemption, by=principal.subject)
        return redemptions.view(session, redemption, with_code=False)


def own_redemption(session, redemption_id: str, principal: Principal) -> Redemption:
    redemption = session.get(Redemption, redemption_id)
    if redemption is None or redemption.resident != principal.subject:
        raise NotFound("redemption", redemption_id)
    return redemption


@blp.get("/me/redemptions")
@authenticated
@blp.arguments(RedemptionQuery, location="query", unknown=RAISE)
@blp.response(200, RedemptionPage)
def my_redemptions(args):
    """My redemptions, newest first, with the code of those waiting for their hand-over."""
    with runtime().db.transaction() as session:
        return page_of_redemptions(session, select(Redemption).where(
            Redemption.resident == current_principal().subject), args, with_code=True)


@blp.get("/me/redemptions/<string:redemption_id>")
@authenticated
@blp.response(200, RedemptionOut)
def my_redemption(redemption_id):
    with runtime().db.transaction() as session:
        return redemptions.view(session, own_redemption(session, redemption_id, current_principal()), with_code=True)


@blp.post("/me/redemptions/<string:redemption_id>/cancel")
@authenticated
@blp.response(200, RedemptionOut)
def cancel_mine(redemption_id):
    """Call my redemption off: the points and the items return."""
    principal = current_principal()
    with shop_problems(), runtime().db.transaction() as session:
        redemption = own_redemption(session, redemption_id, principal)
        redemptions.cancel(session, redemption, by=principal.subject)
        return redemptions.view(session, redemption, with_code=False)


# --------------------------------------------------------------------------
# the programme
# --------------------------------------------------------------------------


def programme_view(programme) -> dict:
    return {"community": programme.community, "redeem_from": programme.redeem_from,
            "households": programme.households}


@blp.get("/communities/<string:community>/programme")
@authenticated
@blp.response(200, ProgrammeOut)
def get_programme(community):
    check_place(community)
    with runtime().db.transaction() as session:
        return programme_view(supermarkets.programme(session, community))


@blp.put("/communities/<string:community>/programme")
@require_roles(*ADMINS)
@blp.arguments(ProgrammeIn)
@blp.response(200, ProgrammeOut)
def set_programme(body, community):
    """Whose points redemptions spend in this community, and how many households it has."""
    check_place(community)
    if not administers(current_principal(), community):
        raise Forbidden("this community is outside your scope")
    with shop_problems(), runtime().db.transaction() as session:
        return programme_view(supermarkets.set_programme(session, community, **body))


@blp.get("/communities/<string:community>/figures")
@require_roles(*FIGURE_READERS)
@blp.arguments(FiguresQuery, location="query", unknown=RAISE)
@blp.response(200, FiguresOut)
def community_figures(query, community):
    """Points issued, redeemed, outstanding; households taking part and their share; turnover."""
    check_place(community)
    principal = current_principal()
    if not (principal.has_role("auditor") or administers(principal, community)):
        raise Forbidden("this community is outside your scope")
    with runtime().db.transaction() as session:
        found = figures.programme_figures(session, community).get(community) or figures.county_figures({})
        return found | {"community": community, "share": figures.share(found),
                        "turnover": figures.turnover(session, community, query.get("month"))}


@blp.get("/figures")
@require_roles("county_admin", "sysadmin", "auditor")
@blp.response(200, CountyFiguresOut)
def county_figures():
    """The county's programme: every community's figures and their sum."""
    with runtime().db.transaction() as session:
        per_community = figures.programme_figures(session)
    return {"county": figures.county_figures(per_community) | {"community": None},
            "communities": [f | {"community": c} for c, f in sorted(per_community.items())]}


@blp.get("/communities/<string:community>/leaderboard")
@authenticated
@blp.arguments(BoardQuery, location="query", unknown=RAISE)
@blp.response(200, BoardOut)
def leaderboard(query, community):
    """Who earned most this month: households, or people (volunteers and everyone)."""
    check_place(community)
    month = query.get("month") or supermarkets.month_of(utcnow(), runtime().settings.tz)
    with runtime().db.transaction() as session:
        rows = figures.leaderboard(session, community, month, query["board"], limit=query["limit"],
                                   code=query.get("code"))
    return {"community": community, "month": month, "board": query["board"], "items": rows}
