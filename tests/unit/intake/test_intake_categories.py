"""The per-process categories catalogue, without a database."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from gridkit.testkit import wait_for
from intake.categories import Categories


class CountingSession:
    """Answers the catalogue query, counting the reads; the first read waits for ``release``."""

    def __init__(self, release: threading.Event | None = None):
        self.reads = 0
        self.release = release

    def scalars(self, _query):
        self.reads += 1
        if self.release is not None:
            assert self.release.wait(10)
        return [SimpleNamespace(code="noise", network="security", claim_minutes=30, handle_hours=24,
                                handle_minutes=None, working_hours=False, active=True)]


def test_requests_that_find_the_catalogue_stale_together_read_it_once():
    release = threading.Event()
    categories, session = Categories(), CountingSession(release)
    asking, found = [], []

    def submit():
        asking.append(1)
        found.append(categories.get(session, "noise"))

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    # All eight have asked while the first read is still under way.
    wait_for(lambda: len(asking) == 8 and session.reads == 1, message="eight requests and one read")
    release.set()
    for t in threads:
        t.join()
    assert session.reads == 1
    assert [rule.network for rule in found] == ["security"] * 8


def test_an_unknown_code_and_an_old_catalogue_are_read_again():
    now = [100.0]
    categories, session = Categories(fresh_seconds=1.0, clock=lambda: now[0]), CountingSession()
    assert categories.get(session, "noise").claim_minutes == 30
    assert categories.get(session, "noise") is not None and session.reads == 1  # fresh: no read
    assert categories.get(session, "created-a-moment-ago") is None and session.reads == 2
    now[0] += 1.5
    categories.get(session, "noise")
    assert session.reads == 3
