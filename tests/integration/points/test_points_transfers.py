"""The ledger through its HTTP door, on PostgreSQL: accounts, transfers, holds, replays,
refusals, statements. Every test's ledger is audited when it ends (conftest)."""

from __future__ import annotations

from sqlalchemy import func, select

from points import ledger
from points.tables import Account, Entry, OpenHold, Transfer
from points.testing import (
    ADMIN,
    COMMUNITY,
    OTHER_ADMIN,
    OTHER_COMMUNITY,
    balances,
    issue,
    new_id,
    open_account,
    pool,
)

from .conftest import outbox_events


def rows(runtime) -> tuple[int, int, int, tuple]:
    """How many transfers, entries and open holds there are, and every account's totals."""
    with runtime.db.sessions() as session:
        count = [session.execute(select(func.count()).select_from(t)).scalar_one() for t in (Transfer, Entry, OpenHold)]
        totals = tuple(session.execute(select(Account.id, Account.debits_pending, Account.debits_posted,
                                              Account.credits_pending, Account.credits_posted)
                                       .order_by(Account.id)).all())
    return count[0], count[1], count[2], totals


def send(client, headers, **body):
    return client.post("/transfers", json=body, headers=headers)


def test_an_award_moves_points_from_the_pool_and_its_replay_moves_nothing(points, client, admin):
    person, issuing = open_account(points), pool(points)
    body = {"id": new_id(), "debit_account_id": issuing, "credit_account_id": person, "amount": 30, "code": "award"}
    first = client.post("/transfers", json=body, headers=admin)
    assert first.status_code == 201, first.json
    assert first.json["phase"] == "single" and first.json["amount"] == 30
    again = client.post("/transfers", json=body, headers=admin)
    assert again.status_code == 200 and again.json == first.json
    assert balances(points, person, issuing) == [30, -30]
    posted = outbox_events(points, "points.transfer.posted")
    assert len(posted) == 1
    assert posted[0]["credit"] == {"id": person, "kind": "person", "community": COMMUNITY,
                                   "holder": posted[0]["credit"]["holder"], "balance": 30, "available": 30}


def test_the_same_id_with_other_fields_is_refused_naming_them_and_changes_nothing(points, client, admin):
    person, issuing = open_account(points), pool(points)
    body = {"id": new_id(), "debit_account_id": issuing, "credit_account_id": person, "amount": 30, "code": "award"}
    assert client.post("/transfers", json=body, headers=admin).status_code == 201
    before = rows(points)
    answer = client.post("/transfers", json=body | {"amount": 31, "memo": "again"}, headers=admin)
    assert answer.status_code == 409
    assert answer.json["type"].endswith("/exists-with-different-fields")
    assert answer.json["fields"] == ["amount", "memo"]
    assert rows(points) == before


def test_zero_negative_fractional_or_textual_amounts_are_refused_and_nothing_changes(points, client, admin):
    person, issuing = open_account(points), pool(points)
    issue(points, person, 5)
    before = rows(points)
    for amount in (0, -5, 10.5, 10.0, "10", True, None, 2**63, 10**13):
        answer = send(client, admin, id=new_id(), debit_account_id=issuing, credit_account_id=person, amount=amount,
                      code="award")
        assert answer.status_code == 422, (amount, answer.json)
        assert "amount" in answer.json["errors"], amount
        assert answer.content_type == "application/problem+json"
    assert rows(points) == before


def test_unknown_or_identical_accounts_and_missing_fields_are_422_naming_the_field(points, client, admin):
    person, issuing = open_account(points), pool(points)
    before = rows(points)
    cases = [
        ({"debit_account_id": issuing, "credit_account_id": 999_999, "amount": 1, "code": "award"},
         "credit_account_id"),
        ({"debit_account_id": person, "credit_account_id": person, "amount": 1, "code": "award"}, "credit_account_id"),
        ({"debit_account_id": issuing, "credit_account_id": person, "code": "award"}, "amount"),
        ({"debit_account_id": issuing, "credit_account_id": person, "amount": 1}, "code"),
        ({"debit_account_id": issuing, "credit_account_id": person, "amount": 1, "code": "award",
          "timeout_seconds": 60}, "timeout_seconds"),
        ({"post_pending_id": new_id()}, "post_pending_id"),
        ({"void_pending_id": new_id()}, "void_pending_id"),
    ]
    for body, field in cases:
        answer = send(client, admin, id=new_id(), **body)
        assert answer.status_code == 422 and field in answer.json["errors"], (body, answer.json)
    assert send(client, admin, id="not-a-uuid", debit_account_id=issuing, credit_account_id=person, amount=1,
                code="award").status_code == 422
    assert rows(points) == before


def test_a_person_never_pays_more_than_they_have(points, client, admin):
    person, shop = open_account(points), open_account(points, "supermarket")
    issue(points, person, 25)
    before = rows(points)
    answer = send(client, admin, id=new_id(), debit_account_id=person, credit_account_id=shop, amount=26,
                  code="redemption")
    assert answer.status_code == 409 and answer.json["type"].endswith("/exceeds-credits")
    assert answer.json["available"] == 25
    assert rows(points) == before
    assert send(client, admin, id=new_id(), debit_account_id=person, credit_account_id=shop, amount=25,
                code="redemption").status_code == 201
    assert balances(points, person, shop) == [0, 25]


def test_a_hold_keeps_points_unspendable_until_posted_for_less_and_the_rest_returns(points, client, admin):
    person, shop = open_account(points), open_account(points, "supermarket")
    issue(points, person, 100)
    hold = send(client, admin, id=new_id(), debit_account_id=person, credit_account_id=shop, amount=60,
                code="redemption", pending=True, timeout_seconds=3600)
    assert hold.status_code == 201 and hold.json["phase"] == "pending" and hold.json["expires_at"]
    account = client.get(f"/accounts/{person}", headers=admin).json
    assert (account["balance"], account["held"], account["available"]) == (100, 60, 40)
    too_much = send(client, admin, id=new_id(), debit_account_id=person, credit_account_id=shop, amount=41,
                    code="redemption")
    assert too_much.status_code == 409
    post = send(client, admin, id=new_id(), post_pending_id=hold.json["id"], amount=50)
    assert post.status_code == 201 and post.json["phase"] == "post" and post.json["amount"] == 50
    assert post.json["debit_account_id"] == person and post.json["code"] == "redemption"
    account = client.get(f"/accounts/{person}", headers=admin).json
    assert (account["balance"], account["held"], account["available"]) == (50, 0, 50)
    assert balances(points, shop) == [50]
    assert [e["type"] for e in outbox_events(points)][-2:] == ["points.transfer.pending", "points.transfer.posted"]


def test_a_hold_is_resolved_once_a_post_after_a_void_or_a_second_post_is_refused(points, client, admin):
    person, shop = open_account(points), open_account(points, "supermarket")
    issue(points, person, 100)
    hold = send(client, admin, id=new_id(), debit_account_id=person, credit_account_id=shop, amount=60,
                code="redemption", pending=True).json["id"]
    void_id = new_id()
    void = send(client, admin, id=void_id, void_pending_id=hold)
    assert void.status_code == 201 and void.json["reason"] == "voided" and void.json["amount"] == 60
    assert send(client, admin, id=void_id, void_pending_id=hold).status_code == 200  # its replay
    before = rows(points)
    again = send(client, admin, id=new_id(), post_pending_id=hold)
    assert again.status_code == 409 and again.json["type"].endswith("/pending-voided")
    assert again.json["resolved_by"] == void_id
    assert send(client, admin, id=new_id(), void_pending_id=hold, amount=59).status_code == 422
    assert rows(points) == before
    assert balances(points, person, shop) == [100, 0]
    voided = outbox_events(points, "points.transfer.voided")
    assert [(v["pending_id"], v["reason"], v["debit"]["available"]) for v in voided] == [(hold, "voided", 100)]


def test_a_post_takes_no_more_than_the_hold_and_names_it_as_the_hold_does(points, client, admin):
    person, shop, other = open_account(points), open_account(points, "supermarket"), open_account(points)
    issue(points, person, 100)
    hold = send(client, admin, id=new_id(), debit_account_id=person, credit_account_id=shop, amount=60,
                code="redemption", pending=True).json["id"]
    before = rows(points)
    for extra, field in (({"amount": 61}, "amount"), ({"credit_account_id": other}, "credit_account_id"),
                         ({"code": "award"}, "code"), ({"pending": True}, "pending")):
        answer = send(client, admin, id=new_id(), post_pending_id=hold, **extra)
        assert answer.status_code == 422 and field in answer.json["errors"], (extra, answer.json)
    assert send(client, admin, id=hold, post_pending_id=hold).status_code == 409  # the hold's own id
    assert rows(points) == before


def test_a_hold_past_its_timeout_cannot_be_posted_and_the_sweep_voids_it(points, client, admin):
    from datetime import timedelta

    person, shop = open_account(points), open_account(points, "supermarket")
    issue(points, person, 100)
    hold = ledger.submit(points.db, ledger.Request(
        id=new_id(), debit_account_id=person, credit_account_id=shop, amount=70, code="redemption", pending=True,
        timeout_seconds=60), by=None, now=ledger.utcnow() - timedelta(seconds=61)).transfer["id"]
    before = rows(points)
    late = send(client, admin, id=new_id(), post_pending_id=hold)
    assert late.status_code == 409 and late.json["type"].endswith("/pending-expired")
    assert rows(points) == before
    assert ledger.sweep(points.db) == 1
    assert ledger.sweep(points.db) == 0
    voided = outbox_events(points, "points.transfer.voided")
    assert [(v["pending_id"], v["reason"]) for v in voided] == [(hold, "expired")]
    assert balances(points, person) == [100]
    assert client.get(f"/accounts/{person}", headers=admin).json["available"] == 100
    again = send(client, admin, id=new_id(), void_pending_id=hold)
    assert again.status_code == 409 and again.json["type"].endswith("/pending-expired")


def test_a_source_moves_points_at_most_once_whatever_the_transfer_id(points, client, admin):
    person, issuing = open_account(points), pool(points)
    body = {"debit_account_id": issuing, "credit_account_id": person, "amount": 5, "code": "award",
            "source": "intake.petition.rated:0b7f"}
    first = send(client, admin, id=new_id(), **body)
    assert first.status_code == 201
    second = send(client, admin, id=new_id(), **body)
    assert second.status_code == 409 and second.json["type"].endswith("/source-used")
    assert second.json["transfer_id"] == first.json["id"]
    assert balances(points, person) == [5]


def test_a_community_admin_moves_only_their_community_points(points, client, tokens):
    here, issuing = open_account(points), pool(points)
    there = open_account(points, community=OTHER_COMMUNITY)
    body = {"debit_account_id": issuing, "credit_account_id": there, "amount": 5, "code": "award"}
    assert send(client, tokens.header(ADMIN), id=new_id(), **body).status_code == 403
    assert send(client, tokens.header(OTHER_ADMIN), id=new_id(), **body).status_code == 403
    assert send(client, tokens.header(("county_admin", "county")), id=new_id(), **body).status_code == 201
    assert send(client, tokens.header(("resident", "county")), id=new_id(), debit_account_id=issuing,
                credit_account_id=here, amount=1, code="award").status_code == 403
    assert client.post("/accounts", json={"kind": "person", "community": OTHER_COMMUNITY, "holder": "u-1"},
                       headers=tokens.header(ADMIN)).status_code == 403


def test_opening_an_account_twice_answers_the_first(points, client, admin):
    body = {"kind": "person", "community": COMMUNITY, "holder": "user-7", "household": "hh-3"}
    first = client.post("/accounts", json=body, headers=admin)
    assert first.status_code == 201 and first.json["debits_must_not_exceed_credits"] is True
    again = client.post("/accounts", json=body, headers=admin)
    assert again.status_code == 200 and again.json["id"] == first.json["id"]
    assert client.post("/accounts", json=body | {"household": "hh-4"}, headers=admin).status_code == 409
    assert client.post("/accounts", json={"kind": "issuing", "community": COMMUNITY, "holder": "x"},
                       headers=admin).status_code == 422
    assert client.post("/accounts", json={"kind": "person", "community": COMMUNITY},
                       headers=admin).status_code == 422
    pool_ = client.post("/accounts", json={"kind": "issuing", "community": COMMUNITY}, headers=admin)
    assert pool_.status_code == 201 and pool_.json["debits_must_not_exceed_credits"] is False


def test_a_statement_pages_newest_first_with_the_running_balance_on_every_line(points, client, admin, tokens):
    person = open_account(points, holder="resident-1")
    shop = open_account(points, "supermarket")
    for amount in (10, 20, 30):
        issue(points, person, amount)
    ledger.submit(points.db, ledger.Request(id=new_id(), debit_account_id=person, credit_account_id=shop,
                                            amount=15, code="redemption", pending=True), by=None)
    mine = tokens.header(("resident", "county"), sub="resident-1")
    page = client.get(f"/accounts/{person}/statement?limit=3", headers=mine)
    assert page.status_code == 200, page.json
    lines = page.json["items"]
    assert [(x["phase"], x["change"], x["balance"], x["held"], x["available"]) for x in lines] == [
        ("pending", 0, 60, 15, 45), ("single", 30, 60, 0, 60), ("single", 20, 30, 0, 30)]
    rest = client.get(f"/accounts/{person}/statement?limit=3&cursor={page.json['next_cursor']}", headers=mine)
    assert [x["balance"] for x in rest.json["items"]] == [10] and rest.json["next_cursor"] is None
    assert page.json["account"]["balance"] == 60
    someone = tokens.header(("resident", "county"), sub="resident-2")
    assert client.get(f"/accounts/{person}/statement", headers=someone).status_code == 403
    assert client.get(f"/accounts/{person}/statement", headers=tokens.header(OTHER_ADMIN)).status_code == 403
    assert client.get(f"/accounts/{person}/statement", headers=admin).status_code == 200
    assert client.get(f"/accounts/{person}/statement?cursor=WzEwMF0xx", headers=admin).status_code == 422
    assert [a["id"] for a in client.get("/me/accounts", headers=mine).json["items"]] == [person]


def test_a_household_total_adds_its_account_and_its_members(points, client, admin):
    household = open_account(points, "household", "hh-9")
    members = [open_account(points, household="hh-9") for _ in range(2)]
    outsider = open_account(points)
    for account, amount in zip([household, *members, outsider], (5, 7, 11, 13), strict=True):
        issue(points, account, amount)
    total = client.get(f"/communities/{COMMUNITY}/households/hh-9", headers=admin)
    assert total.status_code == 200
    assert total.json["balance"] == 23 and sorted(total.json["accounts"]) == sorted([household, *members])
    assert client.get(f"/communities/{OTHER_COMMUNITY}/households/hh-9",
                      headers=admin).status_code == 403


def test_a_resident_downloads_her_accounts_and_statement(points, client, tokens):
    person = open_account(points, holder="resident-3")
    issue(points, person, 12)
    mine = tokens.header(("resident", "county"), sub="resident-3")
    part = client.get("/me/personal-data", headers=mine).json["data"]
    assert [(a["id"], a["balance"], [line["amount"] for line in a["statement"]]) for a in part["accounts"]] \
        == [(person, 12, [12])]


def test_the_audit_finds_a_balance_that_its_entries_do_not_explain(points):
    from sqlalchemy import update

    from points import audit

    person = open_account(points)
    issue(points, person, 12)
    with points.db.transaction() as session:
        session.execute(update(Account).where(Account.id == person).values(credits_posted=13))
    with points.db.transaction() as session:
        found = audit.discrepancies(session)
    assert any("sum to" in f for f in found) and any(f"account {person}: totals" in f for f in found), found
    with points.db.transaction() as session:  # put it back: the fixture audits every test's ledger
        session.execute(update(Account).where(Account.id == person).values(credits_posted=12))


def test_the_database_refuses_an_overdraft_that_the_code_would_let_through(points):
    """The CHECK constraint backs up the rule, should a path ever forget it."""
    import pytest
    from sqlalchemy import update
    from sqlalchemy.exc import IntegrityError

    person = open_account(points)
    issue(points, person, 12)
    with pytest.raises(IntegrityError):
        with points.db.transaction() as session:
            session.execute(update(Account).where(Account.id == person).values(debits_posted=13))


def test_an_award_from_a_source_event_moves_points_once_however_often_it_comes(points):
    person = open_account(points)
    outcomes = []
    for _ in range(3):
        with points.db.transaction() as session:
            outcomes.append(ledger.award(session, community=COMMUNITY, account_id=person, amount=8,
                                         source="dispatch.case.closed:ev-1"))
    assert [o.created for o in outcomes] == [True, False, False]
    assert len({o.transfer["id"] for o in outcomes}) == 1
    assert balances(points, person) == [8]
