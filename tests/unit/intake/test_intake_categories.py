"""The per-process categories catalogue, without a database."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from intake.categories import Categories


class CountingSession:
    """Answers the catalogue query slowly (as under load) and counts the reads."""

    def __init__(self):
        self.reads = 0

    def scalars(self, _query):
        self.reads += 1
        time.sleep(0.05)
        return [SimpleNamespace(code="noise", network="security", claim_minutes=30, handle_hours=24,
                                handle_minutes=None, working_hours=False, active=True)]


def test_requests_that_find_the_catalogue_stale_together_read_it_once():
    categories, session = Categories(), CountingSession()
    start = threading.Barrier(8)
    found = []

    def submit():
        start.wait()
        found.append(categories.get(session, "noise"))

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert session.reads == 1
    assert [rule.network for rule in found] == ["security"] * 8


def test_an_unknown_code_and_an_old_catalogue_are_read_again():
    categories, session = Categories(fresh_seconds=0.2), CountingSession()
    assert categories.get(session, "noise").claim_minutes == 30
    assert categories.get(session, "noise") is not None and session.reads == 1  # fresh: no read
    assert categories.get(session, "created-a-moment-ago") is None and session.reads == 2
    time.sleep(0.25)
    categories.get(session, "noise")
    assert session.reads == 3
