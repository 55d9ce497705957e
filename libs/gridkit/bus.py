"""The bus: RabbitMQ (or kombu's in-memory transport) through kombu.

Topology is a naming convention:

* one durable topic exchange per producer, ``gridgov.<service>.events``;
* routing key = CloudEvents type (``grids.grid.created.v1``);
* consumers own durable queues ``<consumer>.<purpose>`` whose dead letters go
  to ``gridgov.dead-letters`` (direct) into ``<queue>.dead-letters``.

Publishing is only done by the outbox relay (:mod:`gridkit.outbox`), in
batches: kombu's ``confirm_publish`` waits for one confirm per message, so on
AMQP we select confirm mode ourselves, publish the batch with ``mandatory``
and then wait once for all the acks. Every wait is bounded by ``timeout``: a
dead or silent broker gives :class:`BusUnavailable`, never a hang.

A cluster is one URL per node separated by ``;`` (kombu's failover list,
``amqp://u:p@rabbit-0//;amqp://u:p@rabbit-1//;…``). Every connection tries the
nodes in turn, starting with the one that answered last, so losing a node
costs each reconnect one refused (or timed-out) attempt at most once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import takewhile

import amqp
import kombu
from kombu import Exchange, Queue, binding
from kombu.exceptions import ChannelError, OperationalError
from kombu.utils.url import parse_url

log = logging.getLogger(__name__)

DEAD_LETTER_EXCHANGE = "gridgov.dead-letters"
CONTENT_TYPE = "application/cloudevents+json"


class BusUnavailable(RuntimeError):
    """The broker could not be reached or did not confirm in time."""


@dataclass(frozen=True)
class Outgoing:
    message_id: str
    exchange: str
    routing_key: str
    body: bytes
    headers: dict = field(default_factory=dict)


@dataclass
class BatchResult:
    confirmed: set[str] = field(default_factory=set)
    returned: dict[str, str] = field(default_factory=dict)  # unroutable: id -> reason
    failed: dict[str, str] = field(default_factory=dict)  # nacked / unconfirmed: id -> reason


def topic_exchange(name: str) -> Exchange:
    return Exchange(name, type="topic", durable=True, auto_delete=False)


def dead_letter_exchange() -> Exchange:
    return Exchange(DEAD_LETTER_EXCHANGE, type="direct", durable=True, auto_delete=False)


class Bus:
    """One service's door to the broker. Thread-safe: concurrent batches take turns."""

    def __init__(self, url: str = "memory://", *, timeout: float = 3.0, queue_type: str = "classic"):
        self.url = url
        self.nodes = [node.strip() for node in url.split(";") if node.strip()] or [url]
        self._answered = 0  # index in nodes of the node that answered last
        self.timeout = timeout
        self.queue_type = queue_type
        self._publisher: kombu.Connection | None = None
        self._declared: set[str] = set()
        self._channel = None
        self._pending: dict[int, str] = {}
        self._result = BatchResult()
        self._next_tag = 1
        self._lock = threading.Lock()

    @property
    def is_memory(self) -> bool:
        return self.url.startswith("memory://")

    def connect(self, *, heartbeat: int | None = None) -> kombu.Connection:
        """An open connection to one of the nodes, or BusUnavailable within about
        ``(nodes + 1) * timeout``."""
        if heartbeat is None:
            heartbeat = 0 if self.is_memory else 30
        # Each node once, the one that answered last first (a dead node may take the
        # whole connect timeout to fail); a single node is tried twice.
        first = self._answered % len(self.nodes)
        order = self.nodes[first:] + self.nodes[:first]
        conn = kombu.Connection(";".join(order), connect_timeout=self.timeout, heartbeat=heartbeat)
        try:
            conn.ensure_connection(max_retries=max(1, len(order) - 1), interval_start=0, interval_step=0,
                                   interval_max=0, timeout=self.timeout * len(order))
        except Exception as exc:
            conn.release()
            if is_connection_error(exc):
                raise BusUnavailable(f"cannot reach the broker: {exc}") from exc
            raise
        self._answered = (first + self._index_of(conn, order)) % len(self.nodes)
        return conn

    @staticmethod
    def _index_of(conn: kombu.Connection, order: list[str]) -> int:
        """Which of ``order`` the connection went to (kombu switched along the list)."""
        if len(order) == 1:
            return 0
        for i, node in enumerate(order):
            parsed = parse_url(node)
            if (parsed.get("hostname"), parsed.get("port")) == (conn.hostname, conn.port):
                return i
        return 0

    def ping(self) -> None:
        if self.is_memory:
            return
        with self.connect():
            pass

    # -- topology -----------------------------------------------------------

    def queue(self, name: str, bindings: Sequence[tuple[str, str]] = ()) -> Queue:
        """A consumer's durable queue with its dead-letter route."""
        arguments = {
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": name,
        }
        if self.queue_type == "quorum":
            arguments["x-queue-type"] = "quorum"
        return Queue(
            name,
            bindings=[binding(topic_exchange(ex), routing_key=key) for ex, key in bindings],
            durable=True,
            auto_delete=False,
            queue_arguments=arguments,
        )

    def dead_letter_queue(self, queue_name: str) -> Queue:
        args = {"x-queue-type": "quorum"} if self.queue_type == "quorum" else {}
        return Queue(
            dead_letter_queue_name(queue_name),
            exchange=dead_letter_exchange(),
            routing_key=queue_name,
            durable=True,
            auto_delete=False,
            queue_arguments=args,
        )

    def declare_consumer_queue(self, channel, name: str, bindings: list[tuple[str, str]]) -> Queue:
        for exchange in {exchange for exchange, _ in bindings}:
            topic_exchange(exchange)(channel).declare()
        dead_letter_exchange()(channel).declare()
        dlq = self.dead_letter_queue(name)(channel)
        dlq.declare()
        queue = self.queue(name, bindings)(channel)
        queue.declare()
        return queue

    def declare_queues(self, queues: dict[str, list[tuple[str, str]]]) -> None:
        """Declare consumer queues ahead of their worker (so nothing published meanwhile is unroutable)."""
        conn = self.connect()
        try:
            channel = conn.channel()
            for name, bindings in queues.items():
                self.declare_consumer_queue(channel, name, bindings)
        finally:
            conn.release()

    def depths(self, queues: Sequence[str]) -> dict[str, int]:
        """Messages ready in each of these queues, by passive declare (it changes nothing);
        a queue that does not exist (yet) is left out."""
        depths = {}
        conn = self.connect(heartbeat=0)
        try:
            channel = conn.channel()
            for name in queues:
                try:
                    depths[name] = channel.queue_declare(queue=name, passive=True).message_count
                except (amqp.exceptions.ChannelError, ChannelError):
                    channel = conn.channel()  # the broker closed the channel that asked
        finally:
            conn.release()
        return depths

    # -- publishing ---------------------------------------------------------

    def publish_batch(self, messages: list[Outgoing]) -> BatchResult:
        """Publish and wait for every confirm; raise BusUnavailable if the broker is gone.

        The result says, per message id, whether the broker confirmed it, returned it
        as unroutable, or failed it (nack, no confirm in time, connection lost while
        waiting); failed messages are for the caller to retry.
        """
        if not messages:
            return BatchResult()
        with self._lock:
            reused = self._publisher is not None
            try:
                return self._publish_once(messages)
            except BusUnavailable:
                if not reused:
                    raise
            # The kept connection may have died while idle (broker restart): one fresh try.
            return self._publish_once(messages)

    def _publish_once(self, messages: list[Outgoing]) -> BatchResult:
        try:
            conn = self._publisher_connection()
            if self.is_memory:
                return self._publish_memory(conn, messages)
            return self._publish_confirmed(conn, messages)
        except BusUnavailable:
            self._drop_publisher()
            raise
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            self._drop_publisher()
            raise BusUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def _publisher_connection(self) -> kombu.Connection:
        if self._publisher is None:
            # No heartbeats: nothing would send them between batches, and every
            # batch waits for its confirms with a deadline anyway.
            self._publisher = self.connect(heartbeat=0)
            self._declared = set()
        return self._publisher

    def _drop_publisher(self) -> None:
        if self._publisher is not None:
            try:
                self._publisher.release()
            except Exception:  # noqa: BLE001 - already broken
                pass
        self._publisher = None
        self._channel = None
        self._pending = {}

    def _declare_exchanges(self, channel, messages: list[Outgoing]) -> None:
        for name in {m.exchange for m in messages} - self._declared:
            topic_exchange(name)(channel).declare()
            self._declared.add(name)

    def _publish_memory(self, conn: kombu.Connection, messages: list[Outgoing]) -> BatchResult:
        channel = conn.default_channel
        self._declare_exchanges(channel, messages)
        producer = kombu.Producer(channel)
        for m in messages:
            producer.publish(m.body, exchange=m.exchange, routing_key=m.routing_key,
                             content_type=CONTENT_TYPE, content_encoding="utf-8",
                             headers=m.headers, message_id=m.message_id, delivery_mode=2)
        return BatchResult(confirmed={m.message_id for m in messages})

    def _confirm_channel(self, conn: kombu.Connection):
        if self._channel is None:
            channel = conn.channel()
            channel.confirm_select()
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
            channel.events["basic_return"].add(self._on_return)
            self._channel = channel
            self._next_tag = 1
        return self._channel

    def _publish_confirmed(self, conn: kombu.Connection, messages: list[Outgoing]) -> BatchResult:
        channel = self._confirm_channel(conn)
        self._declare_exchanges(channel, messages)
        self._pending = {}
        result = self._result = BatchResult()
        for m in messages:
            # The channel's own publish: the body is bytes already, the exchange declared,
            # so kombu's Producer (serialising, compressing, declaring, retrying) would only
            # add its layers. The wire message is the same.
            message = channel.prepare_message(m.body, content_type=CONTENT_TYPE, content_encoding="utf-8",
                                              headers=m.headers, properties={
                                                  "message_id": m.message_id, "delivery_mode": 2})
            channel.basic_publish(message, exchange=m.exchange, routing_key=m.routing_key, mandatory=True,
                                  timeout=self.timeout)
            self._pending[self._next_tag] = m.message_id
            self._next_tag += 1
        deadline = time.monotonic() + max(self.timeout, 0.002 * len(messages))
        failure = "no confirm from broker in time"
        while self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                conn.drain_events(timeout=remaining)
            except TimeoutError:
                break
            except Exception as exc:
                if not is_connection_error(exc):
                    raise
                # Keep what was confirmed before the connection went; retry the rest.
                failure = f"connection lost before confirm: {type(exc).__name__}: {exc}"
                break
        for message_id in self._pending.values():
            result.failed[message_id] = failure
        if result.failed:
            # Unconfirmed or nacked: start the next batch on a fresh connection. A channel
            # opened while a quorum queue was electing a new leader (its node killed) may
            # keep nacking everything for that queue long after the election; a new one
            # routes to the new leader at once.
            self._drop_publisher()
        # A returned message is acked too; it is unroutable, not confirmed.
        result.confirmed -= set(result.returned)
        return result

    def _settle(self, delivery_tag: int, multiple: bool, ok: bool) -> None:
        # Tags are pending in ascending order: the settled ones are a prefix.
        tags = list(takewhile(lambda t: t <= delivery_tag, self._pending)) if multiple else [delivery_tag]
        for tag in tags:
            message_id = self._pending.pop(tag, None)
            if message_id is None:
                continue
            if ok:
                self._result.confirmed.add(message_id)
            else:
                self._result.failed[message_id] = "nacked by broker"

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, True)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, False)

    def _on_return(self, exc, exchange, routing_key, message) -> None:
        message_id = message.properties.get("message_id")
        if message_id:
            self._result.returned[message_id] = f"unroutable: {exchange} {routing_key} ({exc})"

    def close(self) -> None:
        with self._lock:
            self._drop_publisher()


def dead_letter_queue_name(queue_name: str) -> str:
    return f"{queue_name}.dead-letters"


def is_connection_error(exc: BaseException) -> bool:
    """The broker is gone or misbehaving (as opposed to a bug in our code)."""
    return isinstance(exc, OSError | OperationalError | amqp.exceptions.AMQPError | BusUnavailable)
