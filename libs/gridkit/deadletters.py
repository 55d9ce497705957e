"""Dead letters: see what failed and why, and send it back once fixed.

Every consumer queue ``<queue>`` has ``<queue>.dead-letters``; the worker puts
a message there with ``x-gridgov-reason``, ``x-gridgov-attempts``,
``x-gridgov-queue`` and ``x-gridgov-dead-at`` headers. Listing takes each
message without acking it and gives all of them back when done; replaying
publishes the chosen ones to their queue again (attempts reset), waits for
the broker's confirm and only then acks them away from the dead letters::

    gridgov dead-letters list --queue grids.people
    gridgov dead-letters replay --queue grids.people --id 6f1c… --id 0b2e…
    gridgov dead-letters replay --queue grids.people --all
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import kombu

from .bus import CONTENT_TYPE, Bus, BusUnavailable, dead_letter_queue_name
from .consumer import ATTEMPTS_HEADER, REASON_HEADER
from .events import Envelope, InvalidEvent

QUEUE_HEADER = "x-gridgov-queue"
DEAD_AT_HEADER = "x-gridgov-dead-at"
DEAD_LETTER_SUFFIX = ".dead-letters"


def _names(queue: str) -> tuple[str, str]:
    """(original queue, its dead-letter queue) from either name."""
    if queue.endswith(DEAD_LETTER_SUFFIX):
        return queue[: -len(DEAD_LETTER_SUFFIX)], queue
    return queue, dead_letter_queue_name(queue)


@contextmanager
def _browse(bus_url: str, queue: str, *, timeout: float = 5.0) -> Iterator[tuple[kombu.Connection, list]]:
    """Every message of the dead-letter queue, taken unacked; the unacked go back on exit."""
    _, dlq = _names(queue)
    conn = Bus(bus_url, timeout=timeout).connect()
    try:
        channel = conn.channel()
        channel.queue_declare(queue=dlq, passive=True)  # a clear error if there is no such queue
        source = kombu.Queue(dlq, no_declare=True)(channel)
        messages = []
        while (message := source.get(no_ack=False, accept=[CONTENT_TYPE, "application/json"])) is not None:
            messages.append(message)
        yield conn, messages
    finally:
        conn.release()  # closing the channel requeues whatever was not acked


def describe(message) -> dict:
    headers = message.headers or {}
    info = {
        "id": message.properties.get("message_id"),
        "type": None,
        "reason": headers.get(REASON_HEADER),
        "attempts": headers.get(ATTEMPTS_HEADER),
        "dead_at": headers.get(DEAD_AT_HEADER),
        "queue": headers.get(QUEUE_HEADER),
    }
    try:
        envelope = Envelope.parse(message.body)
    except InvalidEvent:
        pass
    else:
        info["id"] = info["id"] or envelope.id
        info["type"] = envelope.type
    return info


def list_dead_letters(bus_url: str, queue: str) -> list[dict]:
    """What sits in ``queue``'s dead letters (``queue`` may name either), oldest first; nothing is removed."""
    with _browse(bus_url, queue) as (_, messages):
        return [describe(m) for m in messages]


def replay(bus_url: str, queue: str, ids: set[str] | None = None) -> int:
    """Send dead letters (all, or those whose id is in ``ids``) back to their queue; return how many."""
    original, _ = _names(queue)
    replayed = 0
    with _browse(bus_url, queue) as (conn, messages):
        chosen = [m for m in messages if ids is None or describe(m)["id"] in ids]
        if not chosen:
            return 0
        options = {} if Bus(bus_url).is_memory else {"confirm_publish": True}
        with kombu.Connection(bus_url, connect_timeout=5, heartbeat=0, transport_options=options) as out:
            channel = out.channel()
            targets = {m.headers.get(QUEUE_HEADER) or original for m in chosen}
            for target in targets:
                channel.queue_declare(queue=target, passive=True)  # never replay into the void
            producer = kombu.Producer(channel, auto_declare=False)
            for message in chosen:
                headers = {k: v for k, v in (message.headers or {}).items()
                           if k not in (ATTEMPTS_HEADER, REASON_HEADER, DEAD_AT_HEADER, QUEUE_HEADER)}
                headers["x-gridgov-replayed-at"] = datetime.now(UTC).isoformat()
                headers["x-gridgov-last-reason"] = (message.headers or {}).get(REASON_HEADER, "")
                properties = {}
                if message_id := message.properties.get("message_id"):
                    properties["message_id"] = message_id
                # Confirmed (confirm_publish) before the dead letter is acked: never lost.
                producer.publish(message.body, exchange="",
                                 routing_key=message.headers.get(QUEUE_HEADER) or original,
                                 headers=headers, content_type=message.content_type or CONTENT_TYPE,
                                 content_encoding=message.content_encoding or "utf-8",
                                 delivery_mode=2, timeout=10, **properties)
                message.ack()
                replayed += 1
    return replayed


def main(argv: list[str] | None = None) -> int:
    default_url = os.environ.get("GRIDGOV_BUS_URL", "amqp://guest:guest@127.0.0.1:5672//")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help="broker URL (default: $GRIDGOV_BUS_URL)")
    parser = argparse.ArgumentParser(prog="gridgov dead-letters", parents=[common],
                                     description="List and replay a queue's dead letters.")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", parents=[common], help="show dead letters without removing them")
    listing.add_argument("--queue", required=True, help="consumer queue (or its .dead-letters queue)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    again = commands.add_parser("replay", parents=[common], help="send dead letters back to their queue")
    again.add_argument("--queue", required=True)
    again.add_argument("--id", action="append", dest="ids", default=[], metavar="ID",
                       help="event id to replay (repeatable)")
    again.add_argument("--all", action="store_true", help="replay every dead letter")
    args = parser.parse_args(argv)
    args.url = getattr(args, "url", default_url)
    try:
        if args.command == "list":
            letters = list_dead_letters(args.url, args.queue)
            for letter in letters:
                if args.json:
                    print(json.dumps(letter, ensure_ascii=False, default=str))
                else:
                    print(f"{letter['id']}  {letter['type'] or '-'}  attempts={letter['attempts']}  "
                          f"dead_at={letter['dead_at']}\n    {letter['reason']}")
            if not args.json:
                print(f"{len(letters)} dead letter(s) in {_names(args.queue)[1]}")
            return 0
        if not args.ids and not args.all:
            parser.error("replay needs --id ID (repeatable) or --all")
        count = replay(args.url, args.queue, None if args.all else set(args.ids))
        print(f"replayed {count} dead letter(s) to {_names(args.queue)[0]}")
        return 0
    except BusUnavailable as exc:
        print(f"broker unavailable: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - e.g. no such queue
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
