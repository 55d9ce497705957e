"""intake's figures for Prometheus ("一屏知社区": one screen to know the community).

Read from the petitions table when the worker is scraped (``ServiceSpec.collectors``),
so they are right after any restart and whatever process changed a petition. Labels
are bounded: a county's communities (hundreds), its categories and the statuses;
never a petition or a person.
"""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from gridkit.service import Runtime

from .tables import Petition

NO_COMMUNITY = "none"  # a place outside every community (as dispatch's figures say)


def petitions(runtime: Runtime) -> list[GaugeMetricFamily]:
    community = func.coalesce(Petition.community_code, NO_COMMUNITY)
    query = (select(community, Petition.category, Petition.status, func.count())
             .group_by(community, Petition.category, Petition.status))
    family = GaugeMetricFamily("gridgov_intake_petitions", "Petitions by community, category and status",
                               labels=["community", "category", "status"])
    with runtime.db.engine.connect() as conn:
        for where, category, status, count in conn.execute(query):
            family.add_metric([where, category, status], count)
    return [family]
