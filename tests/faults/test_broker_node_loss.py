"""Losing the RabbitMQ node that leads the platform's queues, under a steady stream of petitions.

Three private RabbitMQ nodes joined in one cluster (the machine's own node is never
touched); every service runs as its gunicorn and its worker on them, with quorum
queues (``GRIDGOV_QUEUE_TYPE=quorum``) and a bus URL listing the three nodes
(conftest.py). While
residents keep submitting, the node leading the platform's queues is killed (-9):
the queues elect leaders on the two others, every process's connections fail over
to them, and every petition that got a 2xx still gets exactly one case, one offer
notice and its full timeline.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from gridkit import registry
from gridkit.rabbitnode import RabbitCluster
from gridkit.testkit import wait_for

from .petitions import PetitionStream, log_tail, query, wait_until_complete

pytestmark = pytest.mark.timeout(600)


def platform_queues() -> set[str]:
    """Every consumer queue of every service (their dead-letter queues are named after them)."""
    specs = [registry.load(name) for name in registry.available()]
    return {queue for spec in specs if spec.subscriptions for queue in spec.subscriptions.queues}


def queue_table(cluster: RabbitCluster, *columns: str) -> dict[str, dict]:
    done = cluster.ctl("list_queues", *("name", *columns), "--formatter", "json")
    return {q["name"]: q for q in json.loads(done.stdout or "[]")}


def test_every_accepted_petition_goes_all_the_way_when_the_node_leading_the_queues_is_killed(
        cluster, databases, platform, gg, world):
    queues = platform_queues()
    declared = queue_table(cluster, "type", "leader")
    assert queues <= set(declared), queues - set(declared)
    assert {declared[q]["type"] for q in queues} == {"quorum"}
    assert {declared[f"{q}.dead-letters"]["type"] for q in queues} == {"quorum"}
    victim, led = Counter(declared[q]["leader"] for q in queues).most_common(1)[0]
    survivors = {node.node for node in cluster.nodes} - {victim}

    def cases() -> int:
        return query(databases["dispatch"], "SELECT count(*) FROM cases")[0][0]

    stream = PetitionStream(gg, world.residents, rate=6.0).start()
    try:
        stream.wait_accepted(12, "before the fault")
        cluster.node(victim).kill()
        before_kill = set(stream.accepted)
        opened_before_kill = cases()
        # The platform goes on: petitions keep coming, and dispatch opens cases again
        # (its consumer reached the new leaders through another node).
        stream.wait_accepted(20, "after the leader was killed")
        wait_for(lambda: cases() > opened_before_kill + 10, timeout=90, interval=0.2,
                 message="dispatch to open cases again after the kill")
        stream.wait_accepted(10, "while the platform runs on two nodes")
    finally:
        stream.stop()
    assert len(stream.accepted) > len(before_kill), "the stream must go on after the kill"
    assert stream.refused == {} and stream.unanswered == {}, stream.summary()
    accepted = set(stream.accepted.values())
    assert len(accepted) == len(stream.accepted)  # every 2xx a petition of its own

    try:
        report = wait_until_complete(databases, accepted)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stream.summary()}\n--- dispatch worker ---\n"
                             f"{log_tail(platform, 'dispatch-worker')}\n--- notify worker ---\n"
                             f"{log_tail(platform, 'notify-worker')}") from None
    assert report.cases == len(accepted) and report.offer_notices == len(accepted)
    retried = {name: query(url, "SELECT coalesce(sum(attempts), 0) FROM outbox")[0][0]
               for name, url in databases.items()}
    print(f"\n{led} of {len(queues)} queues led by {victim}, killed; {stream.summary()}\n"
          f"failed publish attempts, retried: {retried}\n{report.render()}")

    # The queues are led by the survivors now, and nothing went to a dead-letter queue.
    after = queue_table(cluster, "leader", "messages")
    assert {after[q]["leader"] for q in queues} <= survivors
    assert {q: after[f"{q}.dead-letters"]["messages"] for q in queues} == {q: 0 for q in queues}
