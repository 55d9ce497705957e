"""Poison messages end in ``<queue>.dead-letters`` with their reason; the rest keep flowing."""

from __future__ import annotations

import json
import uuid

import kombu
import pytest
from ledger_service import (
    ENTRY_RECORDED,
    FAILING_MEMOS,
    QUEUE,
    applied_counts,
    record_entries,
)

from gridkit import deadletters
from gridkit.bus import CONTENT_TYPE, topic_exchange
from gridkit.testkit import wait_for


@pytest.fixture
def poison_memo():
    FAILING_MEMOS.add("poison")
    yield "poison"
    FAILING_MEMOS.discard("poison")


def send_raw(amqp_url: str, body: bytes, *, message_id: str, exchange: str = "", routing_key: str = QUEUE) -> None:
    with kombu.Connection(amqp_url, transport_options={"confirm_publish": True}) as conn:
        kombu.Producer(conn.default_channel).publish(
            body, exchange=topic_exchange(exchange) if exchange else "", routing_key=routing_key,
            content_type=CONTENT_TYPE, content_encoding="utf-8", message_id=message_id, delivery_mode=2)


def envelope(type_: str, data: dict) -> bytes:
    return json.dumps({"specversion": "1.0", "id": str(uuid.uuid4()), "type": type_, "source": "test",
                       "time": "2024-01-01T00:00:00Z", "data": data}).encode()


def by_id(letters: list[dict]) -> dict[str, dict]:
    return {letter["id"]: letter for letter in letters}


def test_poison_messages_are_dead_lettered_with_their_reason_and_the_rest_keep_flowing(
        ledger, effects, start_worker, poison_memo, amqp_url):
    start_worker(effects)
    relay = ledger.relay()
    send_raw(amqp_url, b"{not json", message_id="garbage")
    send_raw(amqp_url, envelope(ENTRY_RECORDED.type, {"entry_id": "seven", "memo": "x"}),
             message_id="schema-breaker", exchange=ENTRY_RECORDED.exchange, routing_key=ENTRY_RECORDED.type)
    send_raw(amqp_url, envelope("ledgertest.entry.exploded.v1", {}), message_id="undeclared")
    [poisoned] = record_entries(ledger.db, 1, memo=poison_memo)
    relay.drain()
    good = record_entries(ledger.db, 30)
    relay.drain()

    wait_for(lambda: len(applied_counts(effects.db)) == 30, message="the good events")
    letters = by_id(wait_for(lambda: (ls := deadletters.list_dead_letters(amqp_url, QUEUE)) and len(ls) == 4 and ls,
                             message="four dead letters"))

    assert set(applied_counts(effects.db)) == set(good)
    assert letters["garbage"]["reason"].startswith("invalid event: body is not JSON")
    assert letters["schema-breaker"]["reason"].startswith(f"invalid event: {ENTRY_RECORDED.type}: invalid data")
    assert "undeclared event type" in letters["undeclared"]["reason"]
    assert all(letters[i]["attempts"] == 1 for i in ("garbage", "schema-breaker", "undeclared"))
    assert letters[poisoned]["attempts"] == 3
    assert letters[poisoned]["reason"].startswith("handler failed 3 times: RuntimeError: cannot apply entries")
    assert letters[poisoned]["type"] == ENTRY_RECORDED.type and letters[poisoned]["dead_at"]


def test_listing_dead_letters_leaves_them_in_place(ledger, effects, start_worker, poison_memo, amqp_url):
    start_worker(effects)
    record_entries(ledger.db, 3, memo=poison_memo)
    ledger.relay().drain()
    first = wait_for(lambda: (ls := deadletters.list_dead_letters(amqp_url, QUEUE)) and len(ls) == 3 and ls,
                     message="three dead letters")

    assert deadletters.list_dead_letters(amqp_url, QUEUE + ".dead-letters") == first


def test_a_replayed_dead_letter_is_processed_once_the_handler_is_fixed(
        ledger, effects, start_worker, poison_memo, amqp_url, capsys):
    _, outcomes = start_worker(effects)
    poisoned = record_entries(ledger.db, 3, memo=poison_memo)
    ledger.relay().drain()
    wait_for(lambda: len(deadletters.list_dead_letters(amqp_url, QUEUE)) == 3, message="three dead letters")

    FAILING_MEMOS.discard(poison_memo)  # the fix is deployed
    assert deadletters.main(["--url", amqp_url, "replay", "--queue", QUEUE, "--id", poisoned[0]]) == 0
    wait_for(lambda: poisoned[0] in applied_counts(effects.db), message="the replayed event")
    assert deadletters.replay(amqp_url, QUEUE, {"no-such-id"}) == 0
    assert {d["id"] for d in deadletters.list_dead_letters(amqp_url, QUEUE)} == set(poisoned[1:])

    assert deadletters.main(["--url", amqp_url, "replay", "--queue", QUEUE, "--all"]) == 0
    wait_for(lambda: set(applied_counts(effects.db)) == set(poisoned), message="every replayed event")
    assert deadletters.list_dead_letters(amqp_url, QUEUE) == []
    assert all(n == 1 for n in applied_counts(effects.db).values())
    assert deadletters.main(["list", "--queue", QUEUE, "--url", amqp_url]) == 0
    assert "replayed 2 dead letter(s) to effectstest.entries" in capsys.readouterr().out


def test_the_dead_letter_cli_lists_as_json_lines_and_refuses_a_replay_without_ids(
        ledger, effects, start_worker, poison_memo, amqp_url, capsys):
    start_worker(effects)
    [poisoned] = record_entries(ledger.db, 1, memo=poison_memo)
    ledger.relay().drain()
    wait_for(lambda: deadletters.list_dead_letters(amqp_url, QUEUE), message="a dead letter")
    capsys.readouterr()

    assert deadletters.main(["--url", amqp_url, "list", "--queue", QUEUE, "--json"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["id"] == poisoned
    with pytest.raises(SystemExit):
        deadletters.main(["--url", amqp_url, "replay", "--queue", QUEUE])
    assert deadletters.main(["--url", amqp_url, "list", "--queue", "nobody.home"]) == 1
