"""A service's PostgreSQL restarted, then failed over to its replica, under a steady
stream of petitions.

intake's database is a private PostgreSQL primary with a streaming replica (the
machine's own server, which the other services use here, is never touched; see
conftest.py). intake reaches it through one multi-host URL, ``host=<primary>,<replica>`` with
``target_session_attrs=read-write``: libpq connects to whichever of the two takes
writes, so a promoted replica is found without changing any setting or restarting
anything (in production the service names CloudNativePG's ``<cluster>-rw`` Service,
which follows the primary the same way; see docs/operating.md).

(a) The primary crashes (``pg_ctl stop -m immediate``) and comes back: while it is
gone intake answers 503 with an RFC 7807 problem, never 500, and ``/readyz`` says
the database is unavailable; it recovers by itself once the server is back.
(b) The primary stops for good and the replica is promoted: the same.

Through both, every petition that got a 2xx is in intake afterwards and its event
went out: dispatch opened its case, notify told its grid worker and its reporter,
and the timeline is complete. intake's processes are never restarted.
"""

from __future__ import annotations

import time

import pytest
import requests

from gridkit.testkit import wait_for

from .petitions import PetitionStream, gunicorn_workers, log_tail, wait_until_complete

pytestmark = pytest.mark.timeout(600)

PROBLEM = "application/problem+json"


def readiness(platform) -> tuple[int, dict]:
    answer = requests.get(platform.url("intake", "/readyz"), timeout=10)
    return answer.status_code, answer.json()


def database_is_down(platform) -> dict | None:
    """intake's /readyz once it says the database is unavailable (a 503 problem)."""
    status, body = readiness(platform)
    if status == 503 and body.get("checks", {}).get("database", "").startswith("unavailable"):
        return body
    return None


def wait_for_the_outage(platform, stream: PetitionStream, since: float) -> None:
    """Both doors of intake notice: /readyz names the database, and residents get 503s."""
    body = wait_for(lambda: database_is_down(platform), timeout=60, interval=0.1,
                    message="intake's /readyz to say the database is down")
    assert body["status"] == 503 and body["checks"]["database"] != "ok", body
    wait_for(lambda: len(stream.saw(503, since)) >= 3, timeout=60, interval=0.05,
             message="residents to get 503s while the database is down")


def wait_for_recovery(platform, stream: PetitionStream, what: str) -> None:
    wait_for(lambda: readiness(platform)[0] == 200, timeout=60, interval=0.1,
             message=f"intake to be ready again after {what}")
    stream.wait_accepted(10, f"after {what}")


def test_intake_answers_503_while_its_database_is_gone_and_loses_no_petition_over_a_restart_and_a_failover(
        primary, replica, databases, platform, gg, world):
    web_workers, worker = gunicorn_workers(platform, "intake"), platform.processes["intake-worker"]
    assert web_workers and worker.poll() is None

    stream = PetitionStream(gg, world.residents, rate=6.0).start()
    try:
        stream.wait_accepted(10, "before the faults")

        # (a) the primary crashes and comes back
        crashed = time.monotonic()
        primary.crash()
        wait_for_the_outage(platform, stream, crashed)
        primary.start()
        wait_for_recovery(platform, stream, "the restart")

        # (b) a switchover: the primary goes away for good, cleanly, while its replica
        # streams (so it hands over every commit), and the replica is promoted
        assert replica.in_recovery()
        wait_for(primary.streaming, timeout=60, interval=0.1, message="the replica to stream again")
        stopped = time.monotonic()
        primary.stop()
        wait_for_the_outage(platform, stream, stopped)
        replica.promote()
        wait_for_recovery(platform, stream, "the failover")
        assert not replica.in_recovery()
    finally:
        stream.stop()

    # Never a 500: every 5xx a resident saw was a 503 problem saying to retry.
    assert set(stream.statuses) <= {201, 503}, stream.summary()
    assert stream.failures and all(
        f.status == 503 and f.content_type == PROBLEM and '"type": "' in f.body and "unavailable" in f.body
        for f in stream.failures), stream.failures[:5]
    assert stream.refused == {} and stream.unanswered == {}, stream.summary()

    # Every 2xx is a petition of its own, in intake (now on the promoted replica), and its
    # event reached dispatch and notify: one case, one offer notice, a complete timeline.
    accepted = set(stream.accepted.values())
    assert len(accepted) == len(stream.accepted)
    try:
        report = wait_until_complete(databases, accepted)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stream.summary()}\n--- intake web ---\n{log_tail(platform, 'intake-web')}"
                             f"\n--- intake worker ---\n{log_tail(platform, 'intake-worker')}") from None
    assert report.cases == len(accepted) and report.offer_notices == len(accepted)
    print(f"\n{stream.summary()}\n{report.render()}")

    # Recovered by itself: the same gunicorn workers and worker process throughout.
    assert gunicorn_workers(platform, "intake") == web_workers
    assert worker.poll() is None
