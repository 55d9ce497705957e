"""Failed logins are counted in the database, so every worker sees the same limits."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from conftest import new_phone
from sqlalchemy import insert

PASSWORD = "correct horse battery"


def attempt(client, phone, password, ip="10.0.0.1"):
    return client.post("/tokens", json={"grant_type": "password", "phone": phone, "password": password},
                       environ_base={"REMOTE_ADDR": ip})


def test_an_account_is_locked_after_ten_failures_even_for_the_right_password(client, people):
    phone = new_phone()
    people.add(("resident", "county"), kind="resident", password=PASSWORD, phone=phone)
    for _ in range(10):
        assert attempt(client, phone, "wrong password!").status_code == 401
    locked = attempt(client, phone, PASSWORD, ip="10.9.9.9")  # another address does not help
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["Retry-After"]) <= 15 * 60 + 1
    assert locked.content_type == "application/problem+json"
    # Other accounts are unaffected.
    other = new_phone()
    people.add(("resident", "county"), kind="resident", password=PASSWORD, phone=other)
    assert attempt(client, other, PASSWORD).status_code == 200


def test_the_101st_failure_from_one_address_in_an_hour_never_gets_through(client, people):
    victim = new_phone()
    people.add(("resident", "county"), kind="resident", password=PASSWORD, phone=victim)
    # 100 failures spread over accounts so that no single account is locked.
    for i in range(100):
        assert attempt(client, f"1370000{i // 10:04d}", "guess-guess").status_code == 401
    refused = attempt(client, victim, PASSWORD)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert attempt(client, new_phone(), "guess-guess").status_code == 429
    # The victim can still log in from their own address.
    assert attempt(client, victim, PASSWORD, ip="10.0.0.2").status_code == 200


def test_concurrent_attempts_cannot_slip_past_the_limit(identity, people):
    from identity.tables import LoginAttempt

    now = datetime.now(UTC)
    with identity.db.transaction() as session:
        session.execute(insert(LoginAttempt), [
            {"account_key": f"k{i}", "client_ip": "10.6.6.6", "attempted_at": now} for i in range(99)])
    app = identity.app(testing=True)
    statuses: list[int] = []

    def guess(n):
        statuses.append(attempt(app.test_client(), f"1360000{n:04d}", "guess-guess", ip="10.6.6.6").status_code)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses.count(401) <= 1 and statuses.count(429) >= 7
    with identity.db.engine.connect() as conn:
        from sqlalchemy import func, select

        assert conn.execute(select(func.count()).select_from(LoginAttempt)
                            .where(LoginAttempt.client_ip == "10.6.6.6")).scalar_one() <= 100
