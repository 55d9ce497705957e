"""Idempotency-Key (gridkit.idempotency) on intake's creating POSTs."""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from gridkit.idempotency import utcnow
from gridkit.testkit import wait_for
from intake.tables import Petition, Photo, idempotency

from .conftest import count, outbox_events, petition_body, upload


def post(client, headers, key, **overrides):
    return client.post("/petitions", json=petition_body(**overrides), headers=headers | {"Idempotency-Key": key})


def test_a_retry_with_the_same_key_returns_the_same_petition_and_writes_once(intake, client, people):
    _, headers = people.resident()
    first = post(client, headers, "k-1")
    again = post(client, headers, "k-1")
    assert first.status_code == again.status_code == 201
    assert again.json == first.json and again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert count(intake, Petition) == 1
    assert len(outbox_events(intake, "intake.petition.submitted.v1")) == 1


def test_the_same_key_with_a_different_body_is_422(client, people):
    _, headers = people.resident()
    assert post(client, headers, "k-2").status_code == 201
    response = post(client, headers, "k-2", description="另一件事")
    assert response.status_code == 422 and "Idempotency-Key" in response.json["errors"]


def test_keys_are_per_person(intake, client, people):
    _, a = people.resident()
    _, b = people.resident()
    assert post(client, a, "shared").json["id"] != post(client, b, "shared", separate=True).json["id"]
    assert count(intake, Petition) == 2


def test_an_error_answer_is_not_kept_so_the_client_may_fix_and_retry_with_the_same_key(intake, client, people):
    _, a = people.resident()
    _, b = people.resident()
    post(client, a, "first")
    duplicate = post(client, b, "mine")
    assert duplicate.status_code == 409
    assert post(client, b, "mine", separate=True).status_code == 201
    assert count(intake, Petition) == 2


def test_an_overlong_key_is_422(client, people):
    _, headers = people.resident()
    assert post(client, headers, "x" * 201).status_code == 422


def test_two_concurrent_requests_with_the_same_key_create_one_petition(intake, people):
    _, headers = people.resident()
    app = intake.app(testing=True)
    barrier = threading.Barrier(4)
    answers = []

    def send():
        client = app.test_client()
        barrier.wait()
        answers.append(post(client, headers, "race"))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [201] * 4
    assert len({a.json["id"] for a in answers}) == 1
    assert count(intake, Petition) == 1
    assert len(outbox_events(intake, "intake.petition.submitted.v1")) == 1


def test_photo_uploads_are_idempotent_too(intake, client, people):
    _, headers = people.resident()
    first = upload(client, headers | {"Idempotency-Key": "p"})
    again = upload(client, headers | {"Idempotency-Key": "p"})
    assert first.json == again.json and count(intake, Photo) == 1


def test_the_stored_answer_keeps_no_personal_data_in_the_clear(intake, client, people):
    _, headers = people.resident(name="王小明")
    post(client, headers, "pii", contact={"phone": "13812345678"})
    again = post(client, headers, "pii", contact={"phone": "13812345678"})
    assert again.json["reporter"]["phone"] == "13812345678"
    table = idempotency.table
    with intake.db.engine.connect() as conn:
        stored = conn.execute(select(table.c.body)).scalar_one()
    assert "13812345678" not in stored and "王小明" not in stored


def test_the_worker_forgets_keys_older_than_a_day_and_keeps_the_rest(intake, client, people):
    _, headers = people.resident()
    assert post(client, headers, "old").status_code == 201
    assert post(client, headers, "new", separate=True).status_code == 201
    t = idempotency.table
    with intake.db.transaction() as session:
        session.execute(update(t).where(t.c.key == "old").values(created_at=utcnow() - timedelta(hours=25)))
    intake.extras["idempotency_purge_seconds"] = 0.01
    intake.start_background()  # as `gridgov worker intake` does
    wait_for(lambda: count(intake, t, t.c.key == "old") == 0, message="the day-old key to be forgotten")
    intake.stop_background()
    assert count(intake, t, t.c.key == "new") == 1
    # Forgotten: the same key makes a new petition (the day-old one is not replayed).
    assert post(client, headers, "old", separate=True).headers.get("Idempotent-Replayed") is None


def test_a_petition_committed_just_before_the_database_went_away_is_still_answered_201(
        intake, client, people, monkeypatch):
    _, headers = people.resident()

    def gone(*args, **kwargs):
        raise OperationalError("UPDATE idempotency_keys", {}, psycopg.OperationalError("server closed the connection"))

    monkeypatch.setattr(idempotency, "_store", gone)  # the answer's replay record cannot be written
    answer = post(client, headers, "k-gone")
    assert answer.status_code == 201, answer.json
    assert count(intake, Petition) == 1
