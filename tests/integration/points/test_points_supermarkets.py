"""Points supermarkets on real PostgreSQL: redemptions hold points and reserve stock in one
transaction, the keeper's hand-over posts the hold, a cancel or the hold's timeout returns
both exactly once — under concurrency, and with the ledger audited after every test."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from points import ledger, redemptions, supermarkets
from points.tables import Account, Item, MonthlyTake, Redemption, Transfer, utcnow
from points.testing import COMMUNITY, OTHER_COMMUNITY, issue, new_id, open_account

from .conftest import outbox_events


def run_all(calls, workers: int = 24) -> list:
    workers = min(workers, len(calls))
    start = threading.Barrier(workers)
    with ThreadPoolExecutor(max_workers=workers, initializer=start.wait) as pool_:
        return list(pool_.map(lambda call: call(), calls))


class Shop:
    """A supermarket in COMMUNITY with a catalogue, and helpers to act on it over HTTP."""

    def __init__(self, runtime, tokens, *, community: str = COMMUNITY, stock: int = 100, price: int = 10,
                 monthly_limit: int | None = None, limit_per: str = "person"):
        self.runtime, self.tokens, self.community = runtime, tokens, community
        self.app = runtime.app(testing=True)
        with runtime.db.transaction() as session:
            shop = supermarkets.open_supermarket(session, community=community, name="村积分超市")
            self.id, self.account_id = shop.id, shop.account_id
            self.item = supermarkets.add_item(session, shop, name="洗衣粉", price=price, stock=stock,
                                              monthly_limit=monthly_limit, limit_per=limit_per).id
        self.keeper = tokens.header(("supermarket_keeper", f"supermarket:{self.id}"), sub=f"keeper-{self.id}")

    def resident(self, points: int = 0, *, household: str | None = None) -> tuple[str, int, dict]:
        user = f"resident-{uuid.uuid4().hex[:8]}"
        account = open_account(self.runtime, "person", user, community=self.community, household=household)
        if points:
            issue(self.runtime, account, points, community=self.community)
        return user, account, self.tokens.header(("resident", "county"), sub=user)

    def redeem(self, header, quantity: int = 1, *, item: int | None = None, redemption_id: str | None = None):
        return self.app.test_client().post(f"/supermarkets/{self.id}/redemptions", headers=header, json={
            "id": redemption_id or new_id(), "lines": [{"item_id": item or self.item, "quantity": quantity}]})

    def hand_over(self, code: str, header=None):
        return self.app.test_client().post(f"/supermarkets/{self.id}/hand-overs", json={"code": code},
                                           headers=header or self.keeper)

    def stock(self, item: int | None = None) -> int:
        with self.runtime.db.sessions() as session:
            return session.get(Item, item or self.item).stock

    def account(self, account_id: int) -> Account:
        with self.runtime.db.sessions() as session:
            return session.get(Account, account_id)

    def status(self, redemption_id: str) -> str:
        with self.runtime.db.sessions() as session:
            return session.get(Redemption, redemption_id).status


@pytest.fixture(autouse=True)
def redemptions_agree_with_their_holds(points):
    """After every test: each redemption's status is its hold's fate, and the monthly
    counts are what the redemptions took (the ledger's own audit runs too, conftest)."""
    yield
    with points.db.sessions() as session:
        found = redemptions.discrepancies(session)
    assert not found, "\n".join(found)


@pytest.fixture
def shop(points, tokens):
    return Shop(points, tokens)


def test_a_redemption_holds_points_reserves_stock_and_is_handed_over_once_by_its_code(shop):
    user, account, header = shop.resident(100)
    held = shop.redeem(header, 3)
    assert held.status_code == 201, held.json
    body = held.json
    assert (body["status"], body["amount"], len(body["code"])) == ("held", 30, 8)
    assert shop.stock() == 97
    mine = shop.account(account)
    assert (mine.credits_posted - mine.debits_posted, mine.debits_pending) == (100, 30)

    done = shop.hand_over(body["code"].lower()[:4] + "-" + body["code"].lower()[4:])  # as a keeper types it
    assert done.status_code == 200, done.json
    assert done.json["status"] == "handed_over" and done.json["code"] is None
    mine, till = shop.account(account), shop.account(shop.account_id)
    assert (mine.credits_posted - mine.debits_posted, mine.debits_pending) == (70, 0)
    assert till.credits_posted == 30 and shop.stock() == 97

    again = shop.hand_over(body["code"])
    assert again.status_code == 409 and again.json["type"].endswith("/redemption-handed-over"), again.json
    assert shop.account(shop.account_id).credits_posted == 30
    kinds = [e["type"] for e in outbox_events(shop.runtime) if e["type"].startswith("points.redemption")]
    assert kinds == ["points.redemption.held", "points.redemption.handed_over"]
    ended = outbox_events(shop.runtime, "points.redemption.handed_over")[0]
    assert (ended["resident"], ended["amount"], ended["pieces"], ended["by"]) == (user, 30, 3, f"keeper-{shop.id}")


def test_the_same_redemption_id_answers_the_first_and_another_basket_under_it_is_refused(shop):
    _, account, header = shop.resident(100)
    redemption_id = new_id()
    first = shop.redeem(header, 2, redemption_id=redemption_id)
    again = shop.redeem(header, 2, redemption_id=redemption_id)
    other = shop.redeem(header, 3, redemption_id=redemption_id)
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
    assert again.json["code"] == first.json["code"]
    assert other.json["fields"] == ["lines"]
    assert shop.stock() == 98 and shop.account(account).debits_pending == 20


def test_concurrent_redemptions_against_one_balance_never_overdraw(shop):
    _, account, header = shop.resident(100)  # ten pieces' worth
    answers = run_all([lambda: shop.redeem(header, 1) for _ in range(40)])
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: 10, 409: 30}, statuses
    assert all(a.json["type"].endswith("/exceeds-credits") for a in answers if a.status_code == 409)
    mine = shop.account(account)
    assert (mine.credits_posted, mine.debits_pending) == (100, 100)
    assert shop.stock() == 90  # the refused ones took nothing


def test_concurrent_redemptions_of_the_last_pieces_never_take_more_than_the_stock(points, tokens):
    shop = Shop(points, tokens, stock=5)
    people = [shop.resident(50) for _ in range(20)]
    answers = run_all([lambda h=header: shop.redeem(h, 1) for _, _, header in people])
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: 5, 409: 15}, statuses
    assert all(a.json["type"].endswith("/out-of-stock") for a in answers if a.status_code == 409)
    assert shop.stock() == 0
    with points.db.sessions() as session:  # the refused held nothing
        held = session.execute(select(func.sum(Account.debits_pending)).where(Account.kind == "person")).scalar()
    assert held == 5 * 10


def test_more_than_the_stock_or_the_monthly_limit_is_refused_and_nothing_changes(points, tokens):
    shop = Shop(points, tokens, stock=10, monthly_limit=3)
    _, account, header = shop.resident(1000)
    too_many = shop.redeem(header, 11)
    assert too_many.status_code == 409 and too_many.json["type"].endswith("/out-of-stock"), too_many.json
    assert shop.redeem(header, 2).status_code == 201
    past = shop.redeem(header, 2)
    assert past.status_code == 409 and past.json["type"].endswith("/monthly-limit"), past.json
    assert (past.json["limit"], past.json["taken"]) == (3, 2)
    assert shop.redeem(header, 1).status_code == 201  # exactly up to the limit
    assert shop.stock() == 7 and shop.account(account).debits_pending == 30


def test_a_household_limit_counts_every_member_even_at_once(points, tokens):
    shop = Shop(points, tokens, stock=100, monthly_limit=2, limit_per="household")
    members = [shop.resident(100, household="h-1") for _ in range(6)]
    answers = run_all([lambda h=header: shop.redeem(h, 1) for _, _, header in members])
    assert Counter(a.status_code for a in answers) == {201: 2, 409: 4}
    stranger = shop.resident(100, household="h-2")[2]
    assert shop.redeem(stranger, 2).status_code == 201
    assert shop.stock() == 96


@pytest.mark.parametrize("lines, field", [
    ([], "lines"),
    ([{"item_id": 1, "quantity": 0}], "lines"),
    ([{"item_id": 1, "quantity": 1.5}], "lines"),
    ([{"item_id": 1, "quantity": -2}], "lines"),
    ([{"item_id": 1, "quantity": "2"}], "lines"),
])
def test_bad_baskets_are_422_naming_the_field(shop, lines, field):
    _, account, header = shop.resident(100)
    answer = shop.app.test_client().post(f"/supermarkets/{shop.id}/redemptions", headers=header,
                                         json={"id": new_id(), "lines": lines})
    assert answer.status_code == 422 and field in answer.json["errors"], answer.json
    assert shop.account(account).debits_pending == 0 and shop.stock() == 100


def test_an_item_of_another_supermarket_or_unknown_is_refused(points, tokens):
    here, there = Shop(points, tokens), Shop(points, tokens)
    _, account, header = here.resident(100)
    for item in (there.item, 10**9):
        answer = here.redeem(header, 1, item=item)
        assert answer.status_code == 422 and "lines" in answer.json["errors"], answer.json
    assert here.account(account).debits_pending == 0 and there.stock() == 100


def test_a_keeper_of_another_supermarket_cannot_hand_over_and_a_code_of_another_is_not_found(points, tokens):
    here, there = Shop(points, tokens), Shop(points, tokens)
    _, account, header = here.resident(100)
    code = here.redeem(header, 1).json["code"]

    stranger = here.hand_over(code, header=there.keeper)  # another supermarket's keeper, at this one
    assert stranger.status_code == 403, stranger.json
    elsewhere = there.hand_over(code)  # at their own supermarket, with this one's code
    assert elsewhere.status_code == 404, elsewhere.json
    resident = here.hand_over(code, header=header)  # the resident is no keeper
    assert resident.status_code == 403
    admin_elsewhere = here.hand_over(code, header=tokens.header(("community_admin", f"division:{OTHER_COMMUNITY}")))
    assert admin_elsewhere.status_code == 403
    assert shop_state(here, account) == (1, 10, 0, 99)  # still held, nothing moved
    assert here.hand_over(code).status_code == 200


def shop_state(shop: Shop, account: int) -> tuple:
    with shop.runtime.db.sessions() as session:
        held = session.execute(select(func.count()).select_from(Redemption)
                               .where(Redemption.status == "held")).scalar()
    return held, shop.account(account).debits_pending, shop.account(shop.account_id).credits_posted, shop.stock()


def test_cancelling_returns_points_and_stock_exactly_once(points, tokens):
    shop = Shop(points, tokens, stock=10, monthly_limit=5)
    _, account, header = shop.resident(100)
    held = shop.redeem(header, 4).json
    client = shop.app.test_client()
    cancelled = client.post(f"/me/redemptions/{held['id']}/cancel", headers=header)
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    again = client.post(f"/me/redemptions/{held['id']}/cancel", headers=header)
    assert again.status_code == 409 and again.json["type"].endswith("/redemption-cancelled")
    assert shop.hand_over(held["code"]).status_code == 409
    assert shop.stock() == 10 and shop.account(account).debits_pending == 0
    with points.db.sessions() as session:
        assert session.execute(select(MonthlyTake.quantity)).scalar() == 0
    # someone else's redemption is not found; a keeper may cancel at the counter
    other = shop.redeem(header, 1).json
    assert client.post(f"/me/redemptions/{other['id']}/cancel",
                       headers=shop.resident()[2]).status_code == 404
    assert client.post(f"/supermarkets/{shop.id}/redemptions/{other['id']}/cancel",
                       headers=shop.keeper).json["status"] == "cancelled"
    assert shop.stock() == 10
    assert [e["by"] for e in outbox_events(points, "points.redemption.cancelled")] == [
        held["resident"], f"keeper-{shop.id}"]


def test_a_hold_that_times_out_returns_points_and_stock_once_and_its_code_is_refused(points, tokens):
    shop = Shop(points, tokens, stock=10, monthly_limit=5)
    _, account, header = shop.resident(100)
    held = shop.redeem(header, 3).json
    later = utcnow() + timedelta(days=3)
    with pytest.raises(ledger.Refused) as refused, points.db.transaction() as session:
        # past the timeout, before any sweep: refused (and the transaction rolled back)
        redemptions.hand_over(session, session.get(Redemption, held["id"]), by="keeper", now=later)
    assert refused.value.type == "redemption-expired"
    assert shop.status(held["id"]) == "held" and shop.stock() == 7

    assert ledger.sweep(points.db, later) == 1
    assert ledger.sweep(points.db, later) == 0
    assert shop.status(held["id"]) == "expired"
    assert shop.stock() == 10 and shop.account(account).debits_pending == 0
    with points.db.sessions() as session:
        assert session.execute(select(MonthlyTake.quantity)).scalar() == 0
    late = shop.hand_over(held["code"])
    assert late.status_code == 409 and late.json["type"].endswith("/redemption-expired"), late.json
    assert [e["redemption_id"] for e in outbox_events(points, "points.redemption.expired")] == [held["id"]]
    assert outbox_events(points, "points.redemption.expired")[0]["by"] is None


def test_a_hand_over_racing_a_cancel_and_the_sweep_ends_the_redemption_once(points, tokens):
    shop = Shop(points, tokens, stock=50)
    people = [shop.resident(100) for _ in range(8)]
    held = [shop.redeem(header, 2).json for _, _, header in people]
    # The sweep runs as if the holds had timed out while the keeper and the residents act now.
    due = utcnow() + timedelta(days=3)

    calls = []
    for (_, _, header), r in zip(people, held, strict=True):
        calls += [lambda r=r: shop.hand_over(r["code"]),
                  lambda r=r, h=header: shop.app.test_client().post(f"/me/redemptions/{r['id']}/cancel", headers=h)]
    calls.append(lambda: ledger.sweep(points.db, due))
    run_all(calls)
    ledger.sweep(points.db, due)

    with points.db.sessions() as session:
        statuses = Counter(session.execute(select(Redemption.status)).scalars())
        resolutions = session.execute(select(func.count()).select_from(Transfer)
                                      .where(Transfer.pending_id.is_not(None))).scalar()
    assert sum(statuses.values()) == 8 and "held" not in statuses and resolutions == 8
    returned = 2 * (statuses["cancelled"] + statuses["expired"])
    assert shop.stock() == 50 - 16 + returned  # each ended redemption's stock returned at most, and exactly, once
    assert shop.account(shop.account_id).credits_posted == 20 * statuses["handed_over"]
    ended = [e["redemption_id"] for e in outbox_events(points) if e["type"] in (
        "points.redemption.handed_over", "points.redemption.cancelled", "points.redemption.expired")]
    assert sorted(ended) == sorted(r["id"] for r in held)  # one end each


def test_a_community_that_pools_by_household_spends_the_households_points(points, tokens):
    shop = Shop(points, tokens)
    admin = tokens.header(("community_admin", f"division:{COMMUNITY}"))
    client = shop.app.test_client()
    assert client.put(f"/communities/{COMMUNITY}/programme", json={"redeem_from": "household"},
                      headers=admin).status_code == 200
    household = open_account(points, "household", "h-9")
    issue(points, household, 50)
    _, person, header = shop.resident(0, household="h-9")
    answer = shop.redeem(header, 2)
    assert answer.status_code == 201 and answer.json["account_id"] == household
    assert shop.account(household).debits_pending == 20 and shop.account(person).debits_pending == 0
    other = tokens.header(("community_admin", f"division:{OTHER_COMMUNITY}"))
    assert client.put(f"/communities/{COMMUNITY}/programme", json={"redeem_from": "person"},
                      headers=other).status_code == 403


def test_the_catalogue_is_run_by_its_keeper_and_admins_only(shop, tokens):
    client = shop.app.test_client()
    added = client.post(f"/supermarkets/{shop.id}/items", headers=shop.keeper,
                        json={"name": "酱油", "price": 5, "stock": 3})
    assert added.status_code == 201, added.json
    item = added.json["id"]
    other_keeper = tokens.header(("supermarket_keeper", "supermarket:999999"))
    assert client.post(f"/supermarkets/{shop.id}/items", headers=other_keeper,
                       json={"name": "x", "price": 5}).status_code == 403
    for bad in ({"name": "x", "price": 0}, {"name": "x", "price": 2.5}, {"name": "x", "price": 5, "stock": -1}):
        assert client.post(f"/supermarkets/{shop.id}/items", headers=shop.keeper, json=bad).status_code == 422
    restocked = client.post(f"/supermarkets/{shop.id}/items/{item}/restock", headers=shop.keeper,
                            json={"quantity": -4})
    assert restocked.status_code == 409 and shop.stock(item) == 3
    assert client.post(f"/supermarkets/{shop.id}/items/{item}/restock", headers=shop.keeper,
                       json={"quantity": 7}).json["stock"] == 10
    assert client.patch(f"/supermarkets/{shop.id}/items/{item}", headers=shop.keeper,
                        json={"active": False}).json["active"] is False
    _, _, header = shop.resident(100)
    withdrawn = shop.redeem(header, 1, item=item)
    assert withdrawn.status_code == 409 and withdrawn.json["type"].endswith("/item-withdrawn")
    listed = client.get(f"/supermarkets?community={COMMUNITY}", headers=header).json["items"]
    assert [i["id"] for i in listed[0]["items"]] == [shop.item]  # residents see what is offered


def test_figures_and_leaderboards(points, tokens):
    shop = Shop(points, tokens)
    admin = tokens.header(("community_admin", f"division:{COMMUNITY}"))
    client = shop.app.test_client()
    _, a, header_a = shop.resident(100, household="h-1")
    shop.resident(30, household="h-1")
    shop.resident(50, household="h-2")
    shop.resident(0, household="h-3")
    client.put(f"/communities/{COMMUNITY}/programme", json={"households": 4}, headers=admin)
    code = shop.redeem(header_a, 2).json["code"]
    shop.hand_over(code)
    shop.redeem(header_a, 1)

    got = client.get(f"/communities/{COMMUNITY}/figures", headers=admin)
    assert got.status_code == 200, got.json
    f = got.json
    assert (f["issued"], f["redeemed"], f["held"], f["outstanding"]) == (180, 20, 10, 160)
    assert (f["participating_households"], f["households"], f["share"]) == (2, 4, 0.5)
    assert f["turnover"] == [{"supermarket_id": shop.id, "name": "村积分超市", "redemptions": 1, "points": 20}]
    county = client.get("/figures", headers=tokens.header(("county_admin", "county"))).json
    assert county["county"]["issued"] == 180 and county["county"]["share"] == 0.5
    assert client.get(f"/communities/{COMMUNITY}/figures", headers=header_a).status_code == 403

    board = client.get(f"/communities/{COMMUNITY}/leaderboard", headers=header_a).json
    assert [(r["holder"], r["points"]) for r in board["items"]] == [("h-1", 130), ("h-2", 50)]
    people = client.get(f"/communities/{COMMUNITY}/leaderboard?board=people", headers=header_a).json
    assert [r["points"] for r in people["items"]] == [100, 50, 30]
    assert client.get(f"/communities/{COMMUNITY}/leaderboard?month=2026-13", headers=header_a).status_code == 422

    from points import figures

    families = {family.name: family for family in figures.collect(points)}
    issued = {s.labels["community"]: s.value for s in families["gridgov_points_issued"].samples}
    assert issued == {COMMUNITY: 180}


def feed(runtime, event_type, data: dict, envelope=None):
    """One event handed to points' worker as if it came off its queue (with the inbox)."""
    import json

    from gridkit.events import Envelope

    envelope = envelope or Envelope.new(event_type, data)
    queue = next(q for q in runtime.spec.subscriptions.queues.values() if event_type.type in q.handlers)
    worker = runtime.extras.get("test_worker") or runtime.extras.setdefault("test_worker", runtime.worker())
    return worker.handle(queue, json.dumps(envelope.to_json()), {}, {})


def test_households_and_a_residents_household_come_from_grids_events(points, tokens):
    from contracts.grids import GRID_CREATED, RESIDENT_BOUND
    from points.figures import programme_figures

    now = utcnow()
    bound = [RESIDENT_BOUND, {"household_id": 1, "unit_id": 1, "building_id": 1, "grid_id": 7, "user_id": "u1",
                              "since": now}]
    assert feed(points, *bound) == "processed"  # before its grid is known: kept, counted once it comes
    feed(points, GRID_CREATED, {
        "id": 7, "network": "security", "code": "g7", "name": "g7", "level": 1, "kind": "regular",
        "institution": None, "parent_id": None, "division": {"id": 3, "code": COMMUNITY, "kind": "community"},
        "version": 1, "boundary": {"type": "Polygon", "coordinates": []}, "valid_from": now,
        "valid_to": None})
    for user, household in (("u2", 1), ("u3", 2), ("u4", 3)):
        feed(points, RESIDENT_BOUND, bound[1] | {"user_id": user, "household_id": household})
    from gridkit.events import Envelope

    again = Envelope.new(RESIDENT_BOUND, bound[1] | {"user_id": "u4", "household_id": 3})
    assert [feed(points, RESIDENT_BOUND, {}, again) for _ in range(2)] == ["processed", "duplicate"]  # redelivered
    with points.db.sessions() as session:
        assert programme_figures(session, COMMUNITY)[COMMUNITY]["households"] == 3

    # a resident whose person account names no household: grids' binding gives it
    shop = Shop(points, tokens, monthly_limit=1, limit_per="household")
    for user in ("u1", "u2"):
        issue(points, open_account(points, "person", user), 100)
    u1, u2 = (tokens.header(("resident", "county"), sub=user) for user in ("u1", "u2"))
    assert shop.redeem(u2, 1).json["household"] == "1"
    refused = shop.redeem(u1, 1)  # the same household: its monthly piece is taken
    assert refused.status_code == 409 and refused.json["type"].endswith("/monthly-limit")


def test_the_same_redemption_sent_at_once_many_times_is_made_once(shop):
    _, account, header = shop.resident(100)
    redemption_id = new_id()
    answers = run_all([lambda: shop.redeem(header, 2, redemption_id=redemption_id) for _ in range(12)])
    assert Counter(a.status_code for a in answers) == {201: 1, 200: 11}, [a.json for a in answers if a.status_code == 409][:1]
    assert len({a.json["code"] for a in answers}) == 1
    assert shop.stock() == 98 and shop.account(account).debits_pending == 20


def test_keepers_list_their_supermarkets_redemptions_and_residents_their_own(shop, tokens):
    _, _, alice = shop.resident(100)
    _, _, bob = shop.resident(100)
    made = [shop.redeem(header, 1).json for header in (alice, bob, alice)]
    shop.hand_over(made[0]["code"])
    client = shop.app.test_client()
    page = client.get(f"/supermarkets/{shop.id}/redemptions?limit=2", headers=shop.keeper).json
    rest = client.get(f"/supermarkets/{shop.id}/redemptions?limit=2&cursor={page['next_cursor']}",
                      headers=shop.keeper).json
    listed = [r["id"] for r in page["items"] + rest["items"]]
    assert sorted(listed) == sorted(r["id"] for r in made) and all(r["code"] is None for r in page["items"])
    held = client.get(f"/supermarkets/{shop.id}/redemptions?status=held", headers=shop.keeper).json["items"]
    assert {r["id"] for r in held} == {made[1]["id"], made[2]["id"]}
    mine = client.get("/me/redemptions", headers=alice).json["items"]
    assert {r["id"] for r in mine} == {made[0]["id"], made[2]["id"]}
    assert [r["code"] for r in mine if r["status"] == "held"] == [made[2]["code"]]
    assert client.get(f"/me/redemptions/{made[1]['id']}", headers=alice).status_code == 404
    other = tokens.header(("supermarket_keeper", f"supermarket:{shop.id + 1}"))
    assert client.get(f"/supermarkets/{shop.id}/redemptions", headers=other).status_code == 403


def test_a_residents_download_has_her_redemptions_without_codes(shop):
    user, _, header = shop.resident(100)
    held = shop.redeem(header, 2).json
    part = shop.app.test_client().get("/me/personal-data", headers=header).json["data"]
    assert [(r["id"], r["amount"], r["status"], r["code"]) for r in part["redemptions"]] == [
        (held["id"], 20, "held", None)]
    stranger = shop.app.test_client().get("/me/personal-data", headers=shop.resident()[2]).json["data"]
    assert stranger["redemptions"] == []


def test_a_community_code_that_is_no_code_is_422(shop):
    _, _, header = shop.resident()
    answer = shop.app.test_client().get("/communities/a%20b/leaderboard", headers=header)
    assert answer.status_code == 422 and "community" in answer.json["errors"], answer.json
