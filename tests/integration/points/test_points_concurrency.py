"""The ledger under concurrency, on PostgreSQL: many requests at once through the HTTP
door (each thread its own client, the app's connection pool shared as in a gunicorn
worker), then the books audited (conftest)."""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import func, select

from points import ledger
from points.tables import Account, Transfer
from points.testing import ADMIN, COMMUNITY, issue, new_id, open_account, pool

from .conftest import outbox_events


def run_all(calls, workers: int = 24) -> list:
    """Run every call on a pool of threads started together; their answers in order."""
    workers = min(workers, len(calls))
    start = threading.Barrier(workers)

    def wait_then(call):
        return call()

    with ThreadPoolExecutor(max_workers=workers, initializer=start.wait) as pool_:
        return list(pool_.map(wait_then, calls))


def test_200_concurrent_holds_of_10_on_1000_points_with_100_replays_hold_exactly_100(points, tokens):
    person, shop = open_account(points), open_account(points, "supermarket")
    issue(points, person, 1000)
    app, header = points.app(testing=True), tokens.header(ADMIN)
    holds = [{"id": new_id(), "debit_account_id": person, "credit_account_id": shop, "amount": 10,
              "code": "redemption", "pending": True, "timeout_seconds": 600} for _ in range(200)]
    replays = random.Random(13).sample(holds, 100)
    bodies = holds + replays
    random.Random(7).shuffle(bodies)

    def post(body):
        return lambda: (body["id"], app.test_client().post("/transfers", json=body, headers=header))

    answers = run_all([post(b) for b in bodies])
    statuses = Counter(answer.status_code for _, answer in answers)
    assert set(statuses) <= {200, 201, 409}, statuses
    created = [transfer_id for transfer_id, answer in answers if answer.status_code == 201]
    assert len(created) == 100 and len(set(created)) == 100
    for transfer_id, answer in answers:
        if answer.status_code == 200:  # a replay answers the original, which exists
            assert answer.json["id"] == transfer_id and transfer_id in created
        if answer.status_code == 409:
            assert answer.json["type"].endswith("/exceeds-credits"), answer.json
    with points.db.sessions() as session:
        account = session.get(Account, person)
        assert (account.credits_posted, account.debits_pending, account.debits_posted) == (1000, 1000, 0)
        assert session.execute(select(func.count()).select_from(Transfer)
                               .where(Transfer.phase == "pending")).scalar_one() == 100
    assert len(outbox_events(points, "points.transfer.pending")) == 100


def test_the_same_id_with_another_amount_is_always_refused(points, tokens):
    person, issuing = open_account(points), pool(points)
    app, header = points.app(testing=True), tokens.header(ADMIN)
    transfer_id = new_id()
    bodies = [{"id": transfer_id, "debit_account_id": issuing, "credit_account_id": person,
               "amount": 10 + i % 2, "code": "award"} for i in range(60)]

    def post(body):
        return lambda: (body["amount"], app.test_client().post("/transfers", json=body, headers=header))

    answers = run_all([post(b) for b in bodies])
    winners = {amount for amount, answer in answers if answer.status_code == 201}
    assert len(winners) == 1
    (won,) = winners
    for amount, answer in answers:
        if amount == won:
            assert answer.status_code in (200, 201), answer.json
        else:
            assert answer.status_code == 409 and answer.json["fields"] == ["amount"], answer.json
    with points.db.sessions() as session:
        assert session.get(Account, person).credits_posted == won


def test_random_transfers_with_concurrent_reads_never_show_a_wrong_sum_or_a_negative_balance(points, tokens):
    """Jepsen's bank: money moves between accounts at random (single transfers and holds
    posted or voided) while readers list every balance; each read is one snapshot, and
    must add up to what was issued, none below zero."""
    accounts = [open_account(points, holder=f"bank-{i}") for i in range(6)]
    for account in accounts:
        issue(points, account, 100)
    total = 600
    app, header = points.app(testing=True), tokens.header(ADMIN)
    stop = threading.Event()
    reads: list[tuple[int, int, int]] = []
    bad: list = []

    def reader():
        client = app.test_client()
        while not stop.is_set():
            page = client.get(f"/accounts?community={COMMUNITY}&kind=person&limit=50", headers=header)
            if page.status_code != 200:
                bad.append(page.json)
                continue
            items = page.json["items"]
            reads.append((sum(a["balance"] for a in items), min(a["balance"] for a in items),
                          min(a["available"] for a in items)))

    def writer(seed: int):
        rng, client = random.Random(seed), app.test_client()
        outcomes = Counter()
        for _ in range(40):
            debit, credit = rng.sample(accounts, 2)
            body = {"id": new_id(), "debit_account_id": debit, "credit_account_id": credit,
                    "amount": rng.randint(1, 60), "code": "gift"}
            if rng.random() < 0.3:
                body["pending"] = True
            answer = client.post("/transfers", json=body, headers=header)
            outcomes[answer.status_code] += 1
            if answer.status_code not in (201, 409):
                bad.append(answer.json)
            if answer.status_code == 201 and body.get("pending"):
                resolve = "post_pending_id" if rng.random() < 0.5 else "void_pending_id"
                extra = {"amount": rng.randint(1, body["amount"])} if resolve == "post_pending_id" else {}
                answer = client.post("/transfers", json={"id": new_id(), resolve: body["id"], **extra}, headers=header)
                if answer.status_code != 201:
                    bad.append(answer.json)
        return outcomes

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for thread in readers:
        thread.start()
    try:
        with ThreadPoolExecutor(max_workers=8) as writers:
            outcomes = sum(writers.map(writer, range(8)), Counter())
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert not bad, bad[:5]
    assert outcomes[201] > 100 and outcomes[409] > 0, outcomes  # money moved, and some was refused
    assert len(reads) > 20
    assert all(read[0] == total for read in reads), [r for r in reads if r[0] != total][:5]
    assert all(read[1] >= 0 and read[2] >= 0 for read in reads), [r for r in reads if min(r[1:]) < 0][:5]


def test_holds_past_their_timeout_are_voided_exactly_once_by_racing_sweeps(points):
    person, shop = open_account(points), open_account(points, "supermarket")
    issue(points, person, 500)
    past = ledger.utcnow() - timedelta(minutes=5)
    holds = [ledger.submit(points.db, ledger.Request(
        id=new_id(), debit_account_id=person, credit_account_id=shop, amount=10, code="redemption", pending=True,
        timeout_seconds=60), by=None, now=past).transfer["id"] for _ in range(40)]
    lasting = ledger.submit(points.db, ledger.Request(
        id=new_id(), debit_account_id=person, credit_account_id=shop, amount=10, code="redemption", pending=True,
        timeout_seconds=3600), by=None, now=past).transfer["id"]

    voided = run_all([lambda: ledger.sweep(points.db) for _ in range(4)], workers=4)
    assert sum(voided) == 40
    with points.db.sessions() as session:
        resolutions = session.execute(select(Transfer.pending_id, Transfer.reason)
                                      .where(Transfer.phase == "void")).all()
        account = session.get(Account, person)
    assert sorted(resolutions) == sorted((hold, "expired") for hold in holds)
    assert (account.debits_pending, account.credits_posted - account.debits_posted) == (10, 500)
    assert sorted(e["pending_id"] for e in outbox_events(points, "points.transfer.voided")) == sorted(holds)
    assert lasting not in {pending_id for pending_id, _ in resolutions}


def test_the_worker_sweeps_holds_that_time_out_by_itself(points):
    from gridkit.testkit import wait_for

    person, shop = open_account(points), open_account(points, "supermarket")
    issue(points, person, 50)
    hold = ledger.submit(points.db, ledger.Request(
        id=new_id(), debit_account_id=person, credit_account_id=shop, amount=20, code="redemption", pending=True,
        timeout_seconds=1), by=None, now=ledger.utcnow() - timedelta(seconds=5)).transfer["id"]
    points.extras["sweep_seconds"] = 0.05
    points.start_background()
    wait_for(lambda: any(e["pending_id"] == hold for e in outbox_events(points, "points.transfer.voided")),
             message="the worker's sweep to void the hold")
    with points.db.sessions() as session:
        assert session.get(Account, person).debits_pending == 0
