"""dispatch's figures for Prometheus: the community's cases and its 三率 (response,
resolution and satisfaction rates) on "一屏知社区", one screen to know the community.

Read from the cases table when the worker is scraped (``ServiceSpec.collectors``), by
the same rules as ``GET /figures?by=community``: the parts of each rate are given (cases
offered and claimed in time, opened and resolved, rated and satisfied), so that the
dashboards and the recording rules divide them for one community or add them up for
several. They count every case since the start, as ``/figures`` does without ``since``;
their history is in Prometheus. Labels are bounded: communities and case states.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from sqlalchemy import and_, func, or_, select
from sqlalchemy import case as when

from gridkit.service import Runtime

from . import domain
from .tables import Case

NO_COMMUNITY = "none"  # a case outside every community (as GET /figures says)
QUEUES = ("catch_all", "grid")  # where a case waits: the county's catch-all queue or a grid's

# Each part of the figures, counted per community as GET /figures counts it (api.figures).
PARTS = {
    "offered": ("Cases offered to someone", Case.first_offered_at.isnot(None)),
    "claimed_in_time": ("Cases first claimed by their claim deadline (响应率 = this / offered)", and_(
        Case.first_offered_at.isnot(None), Case.claimed_at.isnot(None), Case.first_claim_due.isnot(None),
        Case.claimed_at <= Case.first_claim_due)),
    "resolved": ("Cases resolved (解决率 = this / opened)",
                 or_(Case.resolved_at.isnot(None), Case.outcome.in_(domain.RESOLVED_OUTCOMES))),
    "rated": ("Cases the resident rated", Case.rating.isnot(None)),
    "satisfied": ("Cases rated 4 or 5 (满意率 = this / rated)", Case.rating >= domain.SATISFIED_RATING),
}


# 认领用时: from a case's first offer to its claim, as GET /figures measures it.
CLAIM_BUCKETS = (30, 60, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400)


def seconds_between(start, end, dialect: str):
    if dialect == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return func.extract("epoch", end - start)


def claim_times(runtime: Runtime) -> HistogramMetricFamily:
    """Every claimed case's claim time as a histogram per community, from the table: it counts
    the same cases after any restart, and a community's series is there (at zero) from its
    first case on, so increase() sees the first claim too."""
    claimed = and_(Case.claimed_at.isnot(None), Case.first_offered_at.isnot(None))
    seconds = seconds_between(Case.first_offered_at, Case.claimed_at, runtime.db.engine.dialect.name)
    community = func.coalesce(Case.community, NO_COMMUNITY)
    query = select(community, *[func.sum(when((and_(claimed, seconds <= le), 1), else_=0)) for le in CLAIM_BUCKETS],
                   func.sum(when((claimed, 1), else_=0)), func.sum(when((claimed, seconds), else_=0.0))
                   ).group_by(community)
    family = HistogramMetricFamily("gridgov_dispatch_claim_seconds",
                                   "Claim time (认领用时) of every claimed case: first offer to claim",
                                   labels=["community"])
    with runtime.db.engine.connect() as conn:
        for where, *counts, total, seconds_sum in conn.execute(query):
            buckets = [(str(float(le)), int(n or 0)) for le, n in zip(CLAIM_BUCKETS, counts, strict=True)]
            family.add_metric([where], [*buckets, ("+Inf", int(total or 0))], sum_value=float(seconds_sum or 0))
    return family


def cases(runtime: Runtime) -> list[GaugeMetricFamily | HistogramMetricFamily]:
    now = datetime.now(UTC)
    community = func.coalesce(Case.community, NO_COMMUNITY)
    overdue = and_(Case.state.in_(domain.OPEN), Case.step_due_at.isnot(None), Case.step_due_at <= now)
    counted = [func.sum(when((condition, 1), else_=0)) for _, condition in PARTS.values()]
    query = (select(community, Case.state, func.count(), func.sum(when((overdue, 1), else_=0)), *counted)
             .group_by(community, Case.state))
    by_state = GaugeMetricFamily("gridgov_dispatch_cases", "Cases by community and state (opened = their sum)",
                                 labels=["community", "state"])
    late = GaugeMetricFamily("gridgov_dispatch_cases_overdue",
                             "Open cases past their current step's deadline", labels=["community"])
    parts = {name: GaugeMetricFamily(f"gridgov_dispatch_cases_{name}", help_text, labels=["community"])
             for name, (help_text, _) in PARTS.items()}
    # The cases GET /cases?unattended=true lists: nobody to offer them to or to approve them.
    unattended = GaugeMetricFamily("gridgov_dispatch_cases_unattended",
                                   "Cases nobody can take now, by community and queue (catch_all or grid)",
                                   labels=["community", "queue"])
    waiting = (select(community, Case.catch_all, func.count()).where(Case.unattended_since.isnot(None))
               .group_by(community, Case.catch_all))
    totals: dict[str, list[int]] = {}
    with runtime.db.engine.connect() as conn:
        for where, state, count, overdue_count, *part_counts in conn.execute(query):
            by_state.add_metric([where, state], count)
            sums = totals.setdefault(where, [0] * (1 + len(PARTS)))
            for i, value in enumerate([overdue_count, *part_counts]):
                sums[i] += int(value or 0)
        nobody = {(where, "catch_all" if catch_all else "grid"): count for where, catch_all, count in conn.execute(waiting)}
    for where, queue in sorted(nobody.keys() | {(where, queue) for where in totals for queue in QUEUES}):
        unattended.add_metric([where, queue], nobody.get((where, queue), 0))  # a zero says all is well
    for where, (overdue_count, *part_counts) in sorted(totals.items()):
        late.add_metric([where], overdue_count)
        for family, value in zip(parts.values(), part_counts, strict=True):
            family.add_metric([where], value)
    return [by_state, late, unattended, *parts.values(), claim_times(runtime)]
