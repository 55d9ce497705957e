"""The points ledger on PostgreSQL (``python -m bench ledger``).

* ``ledger_transfers_vs_bare_1`` / ``ledger_transfers_vs_bare_8``: transfers/s of
  :func:`points.ledger.submit` — the whole use case with its invariants on: both
  accounts locked in id order, the replay check, the overdraft check, the two
  accounts' totals, the transfer, its two statement lines and its event in the
  outbox, one transaction — by 1 and by 8 concurrent clients (each its own process,
  as gunicorn's workers are), transfers of 1–10 points between random pairs of
  ``ACCOUNTS`` person accounts (each flagged ``debits_must_not_exceed_credits``).
  Baseline: a bare single-row INSERT committed (SQLAlchemy Core, ``engine.begin()``,
  as ``bench/bare_insert.py`` does it) by the same number of client processes, in the
  same run on the same server. ``ROUNDS`` rounds measure both back to back (who goes
  first alternates); the figure is the round with the median ratio. A note gives the
  worst case of contention: 8 clients all paying into one account (one row lock).
* ``points_statement_p99_ms``: p99 of ``GET /accounts/{id}/statement`` (pages of 50,
  walked with their cursors) through gunicorn (deploy/gunicorn.conf.py) for an account
  with five years of monthly activity, next to ``GET /healthz`` on the same server.
"""

from __future__ import annotations

import multiprocessing
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import create_engine, text

from .common import Figure, scratch_database

ACCOUNTS = 1000
FUNDS = 10**9  # each account's points: nobody runs dry during the run
SECONDS, WARMUP = 4.0, 1.0
ROUNDS = 3
CLIENTS = (1, 8)
MONTHS = 60
NEIGHBOURS = 20  # other accounts with five years of activity, whose lines interleave

BARE_DDL = """CREATE TABLE IF NOT EXISTS bare_transfers (
    id bigserial PRIMARY KEY, account bigint NOT NULL, amount bigint NOT NULL,
    at timestamptz NOT NULL DEFAULT now())"""
BARE_INSERT = "INSERT INTO bare_transfers (account, amount) VALUES (:account, :amount)"


def _engine_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


# --- clients (each in a process of its own) ---------------------------------------------------

def _bare_client(start, bounds: list[float], counts, slot: int, url: str) -> None:
    engine = create_engine(_engine_url(url), pool_size=1, max_overflow=0)
    statement, rng = text(BARE_INSERT), random.Random(slot)
    start.wait()  # every client starts the clock as the last one is ready
    begin, end = time.monotonic() + bounds[0], time.monotonic() + bounds[0] + bounds[1]
    done = 0
    while (now := time.monotonic()) < end:
        with engine.begin() as conn:
            conn.execute(statement, {"account": rng.randrange(ACCOUNTS), "amount": rng.randint(1, 10)})
        if now >= begin:
            done += 1
    counts[slot] = done
    engine.dispose()


def _ledger_client(start, bounds: list[float], counts, slot: int, url: str, accounts: list[int], hot: int | None) -> None:
    from gridkit.db import Database
    from points import ledger
    from points.domain import Request

    db, rng = Database(url, pool_size=1), random.Random(slot)
    start.wait()  # every client starts the clock as the last one is ready
    begin, end = time.monotonic() + bounds[0], time.monotonic() + bounds[0] + bounds[1]
    done = 0
    while (now := time.monotonic()) < end:
        debit, credit = rng.sample(accounts, 2)
        if hot is not None:
            credit = hot if debit != hot else credit
        ledger.submit(db, Request(id=str(uuid.uuid4()), debit_account_id=debit, credit_account_id=credit,
                                  amount=rng.randint(1, 10), code="bench"), by="bench")
        if now >= begin:
            done += 1
    counts[slot] = done
    db.dispose()


def _rate(target, clients: int, *args) -> float:
    """Operations per second of ``clients`` processes running ``target`` together for
    ``SECONDS`` after ``WARMUP``."""
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(clients + 1)
    counts = ctx.Array("l", clients)
    bounds = [WARMUP, SECONDS]
    procs = [ctx.Process(target=target, args=(start, bounds, counts, i, *args)) for i in range(clients)]
    for proc in procs:
        proc.start()
    start.wait()
    for proc in procs:
        proc.join()
        if proc.exitcode != 0:
            raise RuntimeError(f"a {target.__name__} process failed ({proc.exitcode})")
    return sum(counts) / SECONDS


# --- world ------------------------------------------------------------------------------------

def _ledger_world(url: str) -> tuple[list[int], int]:
    """``ACCOUNTS`` funded person accounts and the pool that funded them; the runtime's
    migrations make the schema."""
    from gridkit.config import Settings
    from gridkit.service import Runtime
    from points import ledger
    from points.domain import Request
    from points.service import spec

    runtime = Runtime.build(spec, Settings(service="points", database_url=url, bus_url="memory://"), migrate=True)
    with runtime.db.transaction() as session:
        issuing = ledger.open_account(session, kind="issuing", community="BENCH")[0].id
        accounts = [ledger.open_account(session, kind="person", community="BENCH", holder=f"p{i}")[0].id
                    for i in range(ACCOUNTS)]
    for account in accounts:
        ledger.submit(runtime.db, Request(id=str(uuid.uuid4()), debit_account_id=issuing, credit_account_id=account,
                                          amount=FUNDS, code="bench"), by="bench")
    runtime.db.dispose()
    return accounts, issuing


def transfer_figures(ledger_url: str, bare_url: str) -> list[Figure]:
    accounts, _ = _ledger_world(ledger_url)
    engine = create_engine(_engine_url(bare_url))
    with engine.begin() as conn:
        conn.execute(text(BARE_DDL))
    engine.dispose()
    figures = []
    for clients in CLIENTS:
        rounds = []
        for r in range(ROUNDS):
            measure = {"bare": lambda c=clients: _rate(_bare_client, c, bare_url),
                       "ledger": lambda c=clients: _rate(_ledger_client, c, ledger_url, accounts, None)}
            order = ["bare", "ledger"] if r % 2 == 0 else ["ledger", "bare"]
            got = {name: measure[name]() for name in order}
            rounds.append(got)
            print(f"{clients} client(s), round {r + 1}: ledger {got['ledger']:.0f}/s, bare insert "
                  f"{got['bare']:.0f}/s ({got['ledger'] / got['bare']:.2f})", flush=True)
        median = sorted(rounds, key=lambda g: g["ledger"] / g["bare"])[len(rounds) // 2]
        each = ", ".join(f"{g['ledger']:.0f}/{g['bare']:.0f}" for g in rounds)
        notes = [f"rounds (ledger/bare per s): {each}; random pairs of {ACCOUNTS} person accounts, "
                 "1-10 points, each client its own process"]
        if clients == max(CLIENTS):
            hot = _rate(_ledger_client, clients, ledger_url, accounts, accounts[0])
            notes.append(f"worst case, every transfer paying into one account (one row lock): {hot:.0f}/s")
        figures.append(Figure(f"ledger_transfers_vs_bare_{clients}", median["ledger"], "transfers/s", median["bare"],
                              ">= 0.5" if clients == 8 else ">= 0.25", notes=notes))
    return figures


# --- statements -------------------------------------------------------------------------------

def _statement_world(url: str) -> tuple[int, int]:
    """An account with five years of monthly activity (awards, a redemption posted, one
    voided), among neighbours with theirs; (account id, its lines)."""
    from gridkit.config import Settings
    from gridkit.service import Runtime
    from points import ledger
    from points.domain import Request
    from points.service import spec

    runtime = Runtime.build(spec, Settings(service="points", database_url=url, bus_url="memory://"), migrate=True)
    with runtime.db.transaction() as session:
        issuing = ledger.open_account(session, kind="issuing", community="BENCH")[0].id
        shop = ledger.open_account(session, kind="supermarket", community="BENCH", holder="shop")[0].id
        people = [ledger.open_account(session, kind="person", community="BENCH", holder=f"p{i}")[0].id
                  for i in range(NEIGHBOURS + 1)]
    rng = random.Random(5)
    started = datetime.now(UTC) - timedelta(days=30 * MONTHS)

    def submit(when: datetime, **fields) -> str:
        transfer_id = str(uuid.uuid4())
        ledger.submit(runtime.db, Request(id=transfer_id, **fields), by="bench", now=when)
        return transfer_id

    for month in range(MONTHS):
        for person in people:
            day = started + timedelta(days=30 * month + rng.randint(0, 9))
            for k in range(3 if person == people[0] else 1):
                submit(day + timedelta(hours=k), debit_account_id=issuing, credit_account_id=person,
                       amount=rng.randint(5, 50), code="award")
            if person != people[0]:
                continue
            hold = submit(day + timedelta(days=5), debit_account_id=person, credit_account_id=shop,
                          amount=rng.randint(5, 30), code="redemption", pending=True)
            submit(day + timedelta(days=5, hours=2), post_pending_id=hold)
            hold = submit(day + timedelta(days=12), debit_account_id=person, credit_account_id=shop,
                          amount=rng.randint(5, 30), code="redemption", pending=True)
            submit(day + timedelta(days=12, hours=2), void_pending_id=hold)
    with runtime.db.transaction() as session:
        lines = ledger.count_entries(session, people[0])
    runtime.db.dispose()
    return people[0], lines


def statement_figure(url: str) -> Figure:
    from .serving import _session, latencies, service_server

    account, lines = _statement_world(url)
    print(f"statement account: {lines} lines over {MONTHS} months", flush=True)
    with service_server("points", url, [("county_admin", "county")]) as base:
        paths: list[str] = []
        cursor = None
        while len(paths) < 2000:  # walk the statement page by page, again and again
            path = f"/accounts/{account}/statement?limit=50" + (f"&cursor={cursor}" if cursor else "")
            paths.append(path)
            cursor = _session.get(base + path, timeout=10).json()["next_cursor"]
        latencies(base, paths[:50])  # warm both workers
        statement_ms = latencies(base, paths)
        health_ms = latencies(base, ["/healthz"] * 2000)
    p50, p99 = np.percentile(statement_ms, [50, 99])
    h99 = float(np.percentile(health_ms, 99))
    print(f"GET statement p50 {p50:.2f} ms, p99 {p99:.2f} ms (GET /healthz p99 {h99:.2f} ms)", flush=True)
    return Figure("points_statement_p99_ms", float(p99), "ms", h99, "< 50", target_on="value",
                  notes=[f"p50 {p50:.2f} ms; {lines} lines ({MONTHS} months), pages of 50 walked by cursor; "
                         "gunicorn 2 workers x 4 threads on PostgreSQL; baseline = GET /healthz p99"])


def run(*, pg_url: str, amqp_url: str, scale: float = 1.0) -> list[Figure]:
    with scratch_database("ledger") as ledger_url, scratch_database("bare") as bare_url, \
            scratch_database("statement") as statement_url:
        return [*transfer_figures(ledger_url, bare_url), statement_figure(statement_url)]
