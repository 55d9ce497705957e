"""A publishing process that dies by SIGKILL at the worst moment.

    python crash_publisher.py DATABASE_URL BUS_URL after-commit N
        records N entries (business row + outbox row per transaction batch), then dies
        before any relay ran;
    python crash_publisher.py DATABASE_URL BUS_URL after-confirm N
        records N entries, relays them in batches of 50 and dies right after the
        broker confirmed the third batch, before the relay marked it sent.
"""

from __future__ import annotations

import os
import signal
import sys

from ledger_service import ledger_spec, record_entries

from gridkit.bus import Bus
from gridkit.db import Database
from gridkit.outbox import Relay


class DyingBus(Bus):
    def __init__(self, *args, die_after_batches: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches = 0
        self.die_after_batches = die_after_batches

    def publish_batch(self, messages):
        result = super().publish_batch(messages)
        self.batches += 1
        if self.batches == self.die_after_batches:
            print(f"killed after confirm of batch {self.batches}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return result


def main(database_url: str, bus_url: str, mode: str, n: str) -> None:
    db = Database(database_url)
    record_entries(db, int(n), per_transaction=25)
    print(f"committed {n}", flush=True)
    if mode == "after-commit":
        os.kill(os.getpid(), signal.SIGKILL)
    bus = DyingBus(bus_url, die_after_batches=3)
    Relay(ledger_spec.name, db, ledger_spec.outbox, bus, batch_size=50).drain()
    raise SystemExit("the relay finished: the process should have died first")


if __name__ == "__main__":
    main(*sys.argv[1:])
