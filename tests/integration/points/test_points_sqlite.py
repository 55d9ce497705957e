"""The ledger on SQLite, as `make run` embeds it: the same use cases, holds and sweep."""

from __future__ import annotations

from datetime import timedelta

from points import ledger
from points.testing import ADMIN, balances, issue, new_id, open_account


def test_transfers_holds_and_the_sweep_work_on_sqlite(points_sqlite, tokens):
    runtime = points_sqlite
    client, admin = runtime.app(testing=True).test_client(), tokens.header(ADMIN)
    person, shop = open_account(runtime), open_account(runtime, "supermarket")
    issue(runtime, person, 100)
    body = {"id": new_id(), "debit_account_id": person, "credit_account_id": shop, "amount": 30,
            "code": "redemption", "pending": True}
    assert client.post("/transfers", json=body, headers=admin).status_code == 201
    assert client.post("/transfers", json=body, headers=admin).status_code == 200
    assert client.post("/transfers", json=body | {"amount": 31}, headers=admin).status_code == 409
    assert client.post("/transfers", json={"id": new_id(), "debit_account_id": person, "credit_account_id": shop,
                                           "amount": 71, "code": "redemption"}, headers=admin).status_code == 409
    assert client.post("/transfers", json={"id": new_id(), "post_pending_id": body["id"], "amount": 25},
                       headers=admin).status_code == 201
    ledger.submit(runtime.db, ledger.Request(id=new_id(), debit_account_id=person, credit_account_id=shop, amount=5,
                                             code="redemption", pending=True, timeout_seconds=1),
                  by=None, now=ledger.utcnow() - timedelta(seconds=10))
    assert ledger.sweep(runtime.db) == 1
    assert balances(runtime, person, shop) == [75, 25]
    lines = client.get(f"/accounts/{person}/statement", headers=admin).json["items"]
    assert [(x["phase"], x["balance"], x["held"]) for x in lines] == [
        ("void", 75, 0), ("pending", 75, 5), ("post", 75, 0), ("pending", 100, 30), ("single", 100, 0)]
