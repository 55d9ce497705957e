"""``make bench``: every figure next to a baseline measured in the same run.

Prints a table and writes ``bench-results.json`` (git-ignored): one entry per
figure with ``value``, ``unit``, ``baseline``, ``ratio`` and ``target``.
Needs RabbitMQ and PostgreSQL on 127.0.0.1 (as the tests do); PostGIS is
optional and its column is skipped, saying so, when it is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import ledger, locate, petitions, relay
from .common import Figure, scratch_amqp, scratch_database

SUITES = {"locate": locate.run, "relay": relay.bench, "petitions": petitions.run, "ledger": ledger.run}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("suites", nargs="*", help=f"any of {', '.join(SUITES)} (default: all)")
    parser.add_argument("--scale", type=float, default=1.0, help="county size for locate (1.0 = Dali)")
    parser.add_argument("--output", default="bench-results.json")
    args = parser.parse_args(argv)
    unknown = set(args.suites) - set(SUITES)
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(sorted(unknown))}")

    figures: list[Figure] = []
    started = time.time()
    with scratch_database() as pg_url, scratch_amqp() as amqp_url:
        for name in args.suites or list(SUITES):
            print(f"\n== {name} ==", flush=True)
            figures += SUITES[name](pg_url=pg_url, amqp_url=amqp_url, scale=args.scale)

    print(f"\n{'figure':<30}{'value':>14}  {'unit':<10}{'baseline':>14}{'ratio':>9}  target  met")
    for f in figures:
        print(f"{f.name:<30}{f.value:>14.2f}  {f.unit:<10}"
              f"{(f'{f.baseline:.2f}' if f.baseline is not None else 'n/a'):>14}"
              f"{(f'{f.ratio:.2f}' if f.ratio is not None else 'n/a'):>9}  {f.target:<7} "
              f"{'yes' if f.met else ('n/a' if f.met is None else 'NO')}")
        for note in f.notes:
            print(f"    {note}")
    Path(args.output).write_text(json.dumps(
        {f.name: f.as_json() for f in figures}, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {args.output} ({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
