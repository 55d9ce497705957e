"""A consumer process that dies by SIGKILL after its handler's commit and before the ack.

    python crash_worker.py DATABASE_URL BUS_URL K

dies right after the batch holding the K-th message it processed was committed (inbox
rows and effects), so the broker still holds those messages unacked and delivers them again.
"""

from __future__ import annotations

import os
import signal
import sys

from ledger_service import effects_spec

from gridkit.bus import Bus
from gridkit.consumer import Outcome, Worker
from gridkit.db import Database


class DyingWorker(Worker):
    def __init__(self, *args, die_after: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.processed = 0
        self.die_after = die_after

    def handle_batch(self, batch):
        outcomes = super().handle_batch(batch)
        for item, outcome in zip(batch, outcomes, strict=True):
            if outcome == Outcome.PROCESSED:
                self.processed += 1
                if self.processed >= self.die_after:
                    print(f"killed after commit of {item.message_id}", flush=True)
                    os.kill(os.getpid(), signal.SIGKILL)  # committed (with its whole batch), not acked
        return outcomes


def main(database_url: str, bus_url: str, die_after: str) -> None:
    worker = DyingWorker(effects_spec.subscriptions, Database(database_url), effects_spec.inbox,
                         Bus(bus_url), die_after=int(die_after), prefetch=8)
    worker.run()
    raise SystemExit("the worker stopped: the process should have died first")


if __name__ == "__main__":
    main(*sys.argv[1:])
