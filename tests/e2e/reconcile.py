"""Reconcile the petition loop across intake, dispatch and notify: what was lost, what was doubled.

A verification tool for tests and operators, not part of any service: it reads
the three services' databases directly (read-only), which no service ever
does to another. For every petition intake accepted it expects

* exactly one case in dispatch (``cases.petition_id``);
* for every ``dispatch.case.assigned`` event dispatch recorded for that case
  (its outbox is the record of what dispatch decided), exactly one
  ``case_offered`` notice in notify per offered person (the actor excepted, as
  notify's rules say), and no ``case_offered`` notice for anything else;
* exactly one ``case_opened`` notice to the reporter;
* a complete timeline in intake: the petition linked to its case, exactly one
  "opened" step and one "assigned" step per assignment.

Anything missing counts as lost, anything extra as duplicated::

    python -m tests.e2e.reconcile --intake-db URL --dispatch-db URL --notify-db URL \\
        [--petition ID ...]

prints the counts (and what they are made of) and exits 1 unless both are 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import text

from gridkit.db import Database

ASSIGNED = "dispatch.case.assigned.v1"
OPENED_STEPS = ("opened", "opened_catch_all")
ASSIGNED_STEPS = ("assigned", "assigned_desk")
UNOFFERED_STATES = ("awaiting_approval",)  # waits for an admin; no offer yet, by design


@dataclass
class Report:
    petitions: int = 0
    cases: int = 0
    offer_notices: int = 0
    lost: Counter = field(default_factory=Counter)
    duplicated: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    # case id -> (grid id, people it was last offered to): for callers checking the routing
    offers: dict[str, tuple[int | None, frozenset[str]]] = field(default_factory=dict)
    case_of: dict[str, str] = field(default_factory=dict)  # petition id -> case id
    pending_outbox: dict[str, int] = field(default_factory=dict)

    @property
    def total_lost(self) -> int:
        return sum(self.lost.values())

    @property
    def total_duplicated(self) -> int:
        return sum(self.duplicated.values())

    @property
    def clean(self) -> bool:
        return self.total_lost == 0 and self.total_duplicated == 0

    def miss(self, what: str, ref: str, n: int = 1) -> None:
        self.lost[what] += n
        self._example(f"lost {what}", ref)

    def extra(self, what: str, ref: str, n: int = 1) -> None:
        self.duplicated[what] += n
        self._example(f"duplicated {what}", ref)

    def _example(self, key: str, ref: str) -> None:
        if len(self.examples[key]) < 5:
            self.examples[key].append(ref)

    def render(self) -> str:
        lines = [f"petitions: {self.petitions}  cases: {self.cases}  offer notices: {self.offer_notices}",
                 f"lost: {self.total_lost}", f"duplicated: {self.total_duplicated}"]
        for title, counts in (("lost", self.lost), ("duplicated", self.duplicated)):
            for what, n in sorted(counts.items()):
                lines.append(f"  {title} {what}: {n}  e.g. {', '.join(self.examples[f'{title} {what}'])}")
        if any(self.pending_outbox.values()):
            lines.append("  still in outboxes: " + ", ".join(f"{k} {v}" for k, v in self.pending_outbox.items()))
        return "\n".join(lines)


def _rows(db: Database, sql: str, **params) -> list:
    with db.engine.connect() as conn:
        return conn.execute(text(sql), params).all()


def _pending(db: Database) -> int:
    return _rows(db, "SELECT count(*) FROM outbox WHERE status = 'pending'")[0][0]


def reconcile(intake_url: str, dispatch_url: str, notify_url: str,
              petition_ids: Iterable[str] | None = None) -> Report:
    dbs = [Database(url, pool_size=1) for url in (intake_url, dispatch_url, notify_url)]
    try:
        return _reconcile(*dbs, petition_ids=None if petition_ids is None else set(petition_ids))
    finally:
        for db in dbs:
            db.engine.dispose()


def _reconcile(intake: Database, dispatch: Database, notify: Database, *,
               petition_ids: set[str] | None) -> Report:
    report = Report()
    report.pending_outbox = {"intake": _pending(intake), "dispatch": _pending(dispatch)}

    petitions = {r.id: r for r in _rows(intake, "SELECT id, case_id, closed_on_spot FROM petitions")}
    wanted = set(petitions) if petition_ids is None else petition_ids
    report.petitions = len(wanted)
    for missing in sorted(wanted - set(petitions)):
        report.miss("petition in intake", missing)
    steps: dict[str, Counter] = defaultdict(Counter)
    for petition_id, kind, n in _rows(intake, "SELECT petition_id, kind, count(*) FROM timeline "
                                              "GROUP BY petition_id, kind"):
        steps[petition_id][kind] += n

    cases_of: dict[str, list] = defaultdict(list)
    for case in _rows(dispatch, "SELECT id, petition_id, grid_id, state, reporter_id FROM cases"):
        cases_of[case.petition_id].append(case)
    current_offers: dict[str, set[str]] = defaultdict(set)
    for case_id, user_id in _rows(dispatch, "SELECT case_id, user_id FROM offers"):
        current_offers[case_id].add(user_id)
    assignments: dict[str, list[tuple[str, dict]]] = defaultdict(list)
    for event_id, body in _rows(dispatch, "SELECT event_id, body FROM outbox WHERE routing_key = :key "
                                          "ORDER BY id", key=ASSIGNED):
        data = json.loads(body)["data"]
        assignments[data["case_id"]].append((event_id, data))

    offered_notices: dict[str, Counter] = defaultdict(Counter)
    opened_notices: Counter = Counter()
    for kind, case_id, event_id, recipient, n in _rows(
            notify, "SELECT kind, case_id, event_id, recipient_id, count(*) FROM notices "
                    "WHERE kind IN ('case_offered', 'case_opened') "
                    "GROUP BY kind, case_id, event_id, recipient_id"):
        if kind == "case_offered":
            offered_notices[case_id][(event_id, recipient)] += n
        else:
            opened_notices[(case_id, recipient)] += n

    for petition_id in sorted(wanted & set(petitions)):
        petition = petitions[petition_id]
        found = cases_of.get(petition_id, [])
        if not found:
            report.miss("case", petition_id)
            continue
        if len(found) > 1:
            report.extra("case", petition_id, len(found) - 1)
        case = found[0]
        report.cases += 1
        report.case_of[petition_id] = case.id
        report.offers[case.id] = (case.grid_id, frozenset(current_offers.get(case.id, ())))

        # notify: one offer notice per person per assignment, nothing else; one opened notice.
        expected = {(event_id, person) for event_id, data in assignments.get(case.id, [])
                    for person in data["offered_to"] if person and person != data.get("by")}
        if not petition.closed_on_spot and not assignments.get(case.id) and case.state not in UNOFFERED_STATES:
            report.miss("assignment", case.id)
        actual = offered_notices.get(case.id, Counter())
        report.offer_notices += sum(actual.values())
        for key in expected:
            if actual[key] == 0:
                report.miss("offer notice", f"{case.id}→{key[1]}")
            elif actual[key] > 1:
                report.extra("offer notice", f"{case.id}→{key[1]}", actual[key] - 1)
        for key, n in actual.items():
            if key not in expected:
                report.extra("offer notice", f"{case.id}→{key[1]} (unexpected)", n)
        opened = opened_notices[(case.id, case.reporter_id)]
        if opened == 0:
            report.miss("opened notice", case.id)
        elif opened > 1:
            report.extra("opened notice", case.id, opened - 1)

        # intake: the timeline follows the case.
        if petition.case_id != case.id:
            report.miss("timeline link to case", petition_id)
        kinds = steps.get(petition_id, Counter())
        for what, names, want in (("opened step", OPENED_STEPS, 1),
                                  ("assigned step", ASSIGNED_STEPS, len(assignments.get(case.id, [])))):
            have = sum(kinds[name] for name in names)
            if have < want:
                report.miss(what, petition_id, want - have)
            elif have > want:
                report.extra(what, petition_id, have - want)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.reconcile", description=__doc__.split("\n")[0])
    parser.add_argument("--intake-db", required=True, help="intake's database URL")
    parser.add_argument("--dispatch-db", required=True, help="dispatch's database URL")
    parser.add_argument("--notify-db", required=True, help="notify's database URL")
    parser.add_argument("--petition", action="append", dest="petitions", metavar="ID",
                        help="only these petitions (default: every petition in intake)")
    args = parser.parse_args(argv)
    report = reconcile(args.intake_db, args.dispatch_db, args.notify_db, args.petitions)
    print(report.render())
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
