"""Run inside a service's container (``make stack-check`` pipes it to ``python -``): the
service's RabbitMQ user (``GRIDGOV_BUS_URL``) may publish on its own exchange, and may
not publish on another service's, read another's queue, or delete an exchange it does
not bind from.

The stack working end to end shows the permissions are enough; this shows they hold
a service to its own things. Exit 1 naming what was wrong.
"""

import os
import sys
from urllib.parse import unquote, urlparse

import amqp

from gridkit import registry

url = urlparse(os.environ["GRIDGOV_BUS_URL"])
me = unquote(url.username or "")
others = [name for name in registry.SERVICES if name != me]
other = others[0]
# A worker declares the exchanges its queues bind from, and RabbitMQ's configure permission
# that this needs also lets it delete them: only exchanges it does not bind from are off limits.
sources = {exchange for sub in registry.load(me).subscriptions.queues.values() for exchange, _ in sub.bindings}
unbound = [f"gridgov.{name}.events" for name in others if f"gridgov.{name}.events" not in sources]


def attempt(action) -> str:
    """'allowed', 'refused', or what else went wrong."""
    conn = amqp.Connection(f"{url.hostname}:{url.port or 5672}", userid=me, password=unquote(url.password or ""),
                           virtual_host=unquote(url.path[1:]) or "/", confirm_publish=True, connect_timeout=10)
    conn.connect()
    try:
        action(conn.channel())
        return "allowed"
    except amqp.exceptions.AccessRefused:
        return "refused"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return f"{type(exc).__name__}: {exc}"
    finally:
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - a refused channel may have closed it already
            pass


def publish(exchange: str):
    # A routing key that names no queue and no binding: the message is dropped, nobody gets it.
    return lambda channel: channel.basic_publish(amqp.Message(b"{}"), exchange=exchange,
                                                 routing_key="gridgov.stack-check.probe.v1")


expected = {
    f"{me} publishes on gridgov.{me}.events": (publish(f"gridgov.{me}.events"), "allowed"),
    # the worker's retries (through the default exchange) and dead letters
    f"{me} publishes through the default exchange": (publish(""), "allowed"),
    f"{me} publishes on gridgov.dead-letters": (publish("gridgov.dead-letters"), "allowed"),
    f"{me} publishes on gridgov.{other}.events": (publish(f"gridgov.{other}.events"), "refused"),
    f"{me} reads {other}.accounts": (lambda ch: ch.basic_get(queue=f"{other}.accounts"), "refused"),
}
if unbound:
    expected[f"{me} deletes {unbound[0]}"] = (lambda ch: ch.exchange_delete(unbound[0]), "refused")
wrong = []
for what, (action, want) in expected.items():
    got = attempt(action)
    print(f"  {what}: {got}")
    if got != want:
        wrong.append(f"{what}: {got}, expected {want}")
if wrong:
    print("bus permissions wrong:\n  " + "\n  ".join(wrong), file=sys.stderr)
    sys.exit(1)
