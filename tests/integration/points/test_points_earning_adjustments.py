"""Manual awards and deductions on PostgreSQL: up to the community's threshold at once,
above it only when a second, different admin approves; audited; bad input changes
nothing."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from gridkit.audit import TABLE
from points.tables import Adjustment, Base
from points.testing import COMMUNITY, OTHER_ADMIN, OTHER_COMMUNITY, balances, issue, open_account

from .earning import transfers

ALICE = ("community_admin", f"division:{COMMUNITY}")


def adjust(client, headers, account_id: int, amount, *, direction: str = "award", reason: str = "扶老助残",
           adjustment_id: str | None = None, community: str = COMMUNITY):
    return client.post(f"/communities/{community}/adjustments", headers=headers, json={
        "id": adjustment_id or str(uuid.uuid4()), "account_id": account_id, "direction": direction,
        "amount": amount, "reason": reason})


def trail(runtime) -> list[tuple[str, str, str | None]]:
    table = Base.metadata.tables[TABLE]
    with runtime.db.sessions() as session:
        return [tuple(r) for r in session.execute(select(table.c.actor_id, table.c.action, table.c.resource)
                                                  .order_by(table.c.id))]


def test_a_small_award_moves_at_once_and_a_large_one_waits_for_a_second_admin(points, client, tokens):
    alice, bob = tokens.header(ALICE, sub="alice"), tokens.header(ALICE, sub="bob")
    person = open_account(points, holder="resident-9")
    small = adjust(client, alice, person, 100)
    assert small.status_code == 201 and small.get_json()["state"] == "done"
    assert balances(points, person) == [100]

    big_id = str(uuid.uuid4())
    big = adjust(client, alice, person, 101, adjustment_id=big_id)
    assert big.status_code == 201 and big.get_json()["state"] == "awaiting"
    assert adjust(client, alice, person, 101, adjustment_id=big_id).status_code == 200  # a retry
    assert adjust(client, alice, person, 102, adjustment_id=big_id).status_code == 409
    assert balances(points, person) == [100]

    waiting = client.get(f"/communities/{COMMUNITY}/adjustments?state=awaiting", headers=bob).get_json()
    assert [a["id"] for a in waiting["items"]] == [big_id] and waiting["next_cursor"] is None
    newest = client.get(f"/communities/{COMMUNITY}/adjustments?limit=1", headers=bob).get_json()
    older = client.get(f"/communities/{COMMUNITY}/adjustments?limit=1&cursor={newest['next_cursor']}",
                       headers=bob).get_json()
    assert [a["id"] for a in newest["items"] + older["items"]] == [big_id, small.get_json()["id"]]
    assert client.get(f"/communities/{COMMUNITY}/adjustments", headers=tokens.header(OTHER_ADMIN)).status_code == 403

    same = client.post(f"/adjustments/{big_id}/approval", headers=alice)
    assert same.status_code == 409 and same.get_json()["type"].endswith("second-admin-required")
    assert client.post(f"/adjustments/{big_id}/approval", headers=tokens.header(OTHER_ADMIN)).status_code == 403
    assert balances(points, person) == [100]

    approved = client.post(f"/adjustments/{big_id}/approval", headers=bob)
    assert approved.status_code == 200
    assert (approved.get_json()["state"], approved.get_json()["decided_by"]) == ("done", "bob")
    assert balances(points, person) == [201]
    twice = client.post(f"/adjustments/{big_id}/approval", headers=bob)
    assert twice.status_code == 409 and twice.get_json()["type"].endswith("adjustment-decided")
    assert balances(points, person) == [201]
    assert len(transfers(points, "adjustment")) == 2

    assert [(actor, action) for actor, action, _ in trail(points)] == [
        ("alice", "points_award_requested"), ("alice", "points_award_requested"), ("bob", "points_award_approved")]


def test_a_rejected_adjustment_moves_nothing(points, client, tokens):
    alice, bob = tokens.header(ALICE, sub="alice"), tokens.header(ALICE, sub="bob")
    person = open_account(points)
    made = adjust(client, alice, person, 500).get_json()
    rejected = client.post(f"/adjustments/{made['id']}/rejection", headers=bob)
    assert rejected.status_code == 200 and rejected.get_json()["state"] == "rejected"
    assert client.post(f"/adjustments/{made['id']}/approval", headers=bob).status_code == 409
    assert balances(points, person) == [0] and transfers(points) == []


def test_a_deduction_takes_points_back_and_never_more_than_there_are(points, client, tokens):
    alice = tokens.header(ALICE, sub="alice")
    person = open_account(points)
    issue(points, person, 30)
    done = adjust(client, alice, person, 20, direction="deduct", reason="虚报")
    assert done.status_code == 201 and balances(points, person) == [10]
    too_much = adjust(client, alice, person, 11, direction="deduct", reason="虚报")
    assert too_much.status_code == 409 and too_much.get_json()["type"].endswith("exceeds-credits")
    assert balances(points, person) == [10]
    with points.db.sessions() as session:
        assert len(session.scalars(select(Adjustment)).all()) == 1  # the refused one left no row


def test_bad_adjustments_change_nothing(points, client, tokens):
    alice = tokens.header(ALICE, sub="alice")
    person = open_account(points)
    elsewhere = open_account(points, community=OTHER_COMMUNITY)
    pool = open_account(points, "issuing")
    for amount in (0, -5, 10.5, 10.0, "10", True, 10**13):
        assert adjust(client, alice, person, amount).status_code == 422, amount
    assert adjust(client, alice, elsewhere, 10).status_code == 422  # an account of another community
    assert adjust(client, alice, pool, 10).status_code == 422  # not a person's or household's
    assert adjust(client, alice, 10**9, 10).status_code == 422
    assert adjust(client, alice, person, 10, reason="").status_code == 422
    assert adjust(client, alice, person, 10, direction="gift").status_code == 422
    assert adjust(client, tokens.header(OTHER_ADMIN), person, 10).status_code == 403
    assert adjust(client, tokens.header(sub="resident"), person, 10).status_code == 403
    assert client.post("/adjustments/nope/approval", headers=alice).status_code == 404
    assert balances(points, person, elsewhere) == [0, 0] and transfers(points) == []
    with points.db.sessions() as session:
        assert session.scalars(select(Adjustment)).all() == []
