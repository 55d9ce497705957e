"""gridgov's Grafana dashboards, generated from code: the one source of
``deploy/grafana/dashboards/*.json`` (``make dashboards`` writes them; never edit
the JSON by hand, a test regenerates it and compares).

* ``gridgov-platform.json`` — platform health: a row per service of
  ``gridkit.registry.SERVICES`` (a new service gets its row by being registered),
  with its web and worker processes: up, requests, errors, latency, outbox backlog
  and age, events consumed by outcome, queue depth, dead letters; and what only that
  service counts (dispatch's claims and deadlines, notify's deliveries, points' transfers).
* ``gridgov-community.json`` — 一屏知社区, one screen to know the community: petitions
  by status and category, claim time, overdue and unattended cases, the three rates
  (三率), for one community or all of them (the ``community`` variable).

Every expression here is run against a real Prometheus scraping a running
platform by ``tests/e2e/test_alerts.py``, and must return data there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from grafanalib._gen import DashboardEncoder
from grafanalib.core import Dashboard as GrafanaDashboard
from grafanalib.core import (
    GridPos,
    RowPanel,
    Stat,
    Target,
    Template,
    Templating,
    TimeSeries,
)

from gridkit import registry

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"
ROOT = HERE.parents[1]

DATASOURCE = "${datasource}"  # the dashboard's Prometheus, chosen on import
JOB = 'job="gridgov"'
WIDTH = 24  # Grafana's grid is 24 columns wide
PANEL_WIDTH, PANEL_HEIGHT = 6, 7


def target(expr: str, legend: str = "", ref: str = "A") -> Target:
    return Target(expr=expr, legendFormat=legend, refId=ref, datasource=DATASOURCE)


def series(title: str, *targets: tuple[str, str], unit: str = "short", description: str = "") -> TimeSeries:
    """A time series panel; ``targets`` are (PromQL, legend) pairs."""
    return TimeSeries(title=title, description=description, dataSource=DATASOURCE, unit=unit,
                      targets=[target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(targets)])


NEUTRAL = [{"color": "blue", "value": None}]
# 三率 below 80 % is red, below 90 % yellow
RATE_COLOURS = [{"color": "red", "value": None}, {"color": "yellow", "value": 0.8}, {"color": "green", "value": 0.9}]


def stat(title: str, expr: str, legend: str = "", *, unit: str = "none", description: str = "",
         decimals: int | None = None, thresholds: list[dict] = NEUTRAL) -> Stat:
    return Stat(title=title, description=description, dataSource=DATASOURCE, format=unit, decimals=decimals,
                targets=[target(expr, legend)], reduceCalc="lastNotNull", graphMode="area", noValue="–",
                thresholds=thresholds)


def laid_out(rows: list[tuple[str, list]]) -> list:
    """Rows of panels, four to a line, each row under its own header."""
    panels, y = [], 0
    for title, row in rows:
        panels.append(RowPanel(title=title, gridPos=GridPos(h=1, w=WIDTH, x=0, y=y)))
        y += 1
        for i, panel in enumerate(row):
            if i and i % (WIDTH // PANEL_WIDTH) == 0:
                y += PANEL_HEIGHT
            panel.gridPos = GridPos(h=PANEL_HEIGHT, w=PANEL_WIDTH, x=(i * PANEL_WIDTH) % WIDTH, y=y)
            panels.append(panel)
        y += PANEL_HEIGHT
    return panels


def datasource_variable() -> Template:
    return Template(name="datasource", label="Prometheus", type="datasource", query="prometheus", default="")


def dashboard(uid: str, title: str, description: str, rows: list[tuple[str, list]],
              variables: list[Template] = ()) -> GrafanaDashboard:
    return GrafanaDashboard(
        uid=uid, title=title, description=description, tags=["gridgov"], timezone="browser", refresh="30s",
        templating=Templating(list=[datasource_variable(), *variables]), panels=laid_out(rows),
    ).auto_panel_ids()


# --------------------------------------------------------------------------
# platform health: a row per registered service
# --------------------------------------------------------------------------


def service_row(service: str) -> list:
    """What every service has: its processes, HTTP, outbox, consumers and queues."""
    s = f'{JOB}, service="{service}"'
    return [
        stat("Processes up", f"up{{{s}}}", "{{process}} {{instance}}",
             description="1 when Prometheus scrapes the process; 0: GridgovProcessDown"),
        series("Requests by status", (f"sum by (status) (rate(gridgov_http_requests_total{{{s}}}[$__rate_interval]))",
                                      "{{status}}"), unit="reqps"),
        series("5xx share of answers", (f'service:gridgov_http_5xx:ratio_rate5m{{service="{service}"}}', "5xx"),
               unit="percentunit", description="GridgovHTTPErrors, GridgovHTTPErrorRatioHigh"),
        series("Latency", (f'service:gridgov_http_request_duration_seconds:p99_5m{{service="{service}"}}', "p99"),
               ("histogram_quantile(0.5, sum by (le) (rate(gridgov_http_request_duration_seconds_bucket"
                f'{{{s}, route!~".*/stream"}}[$__rate_interval])))', "p50"),
               unit="s", description="live streams not counted; GridgovLatencyHigh"),
        series("Outbox: events waiting", (f"max(gridgov_outbox_pending{{{s}}})", "pending"),
               description="measured by the worker; GridgovOutboxBacklog"),
        series("Outbox: oldest event's wait", (f"max(gridgov_outbox_oldest_pending_seconds{{{s}}})", "oldest"),
               unit="s", description="0 when nothing waits; GridgovOutboxStuck"),
        series("Events consumed by outcome",
               (f"sum by (queue, outcome) (rate(gridgov_events_consumed_total{{{s}}}[$__rate_interval]))",
                "{{queue}} {{outcome}}"), unit="ops"),
        series("Handler time p99",
               ("histogram_quantile(0.99, sum by (le, queue) (rate(gridgov_event_handler_seconds_bucket"
                f"{{{s}}}[$__rate_interval])))", "{{queue}}"), unit="s"),
        series("Queue depth", (f"max by (queue) (gridgov_queue_messages_ready{{{s}}})", "{{queue}}"),
               description="messages waiting for this service's consumers; GridgovConsumerLag"),
        series("Dead letters", (f"max by (queue) (gridgov_queue_dead_letters{{{s}}})", "{{queue}}"),
               description="GridgovDeadLetters; see docs/operating.md#dead-letters"),
    ]


def dispatch_panels(s: str) -> list:
    return [
        series("Claims by outcome", (f"sum by (outcome) (rate(gridgov_dispatch_claims_total{{{s}}}[$__rate_interval]))",
                                     "{{outcome}}"), unit="ops"),
        series("Escalations", (f"sum by (reason, level) (rate(gridgov_dispatch_escalations_total{{{s}}}"
                               "[$__rate_interval]))", "{{reason}} → {{level}}"), unit="ops"),
        series("Deadlines missed (last hour)",
               (f"sum by (step) (increase(gridgov_dispatch_deadlines_missed_total{{{s}}}[1h]))", "{{step}}"),
               description="GridgovDeadlinesMissed"),
        series("Cases nobody can take", (f"max by (community, queue) (gridgov_dispatch_cases_unattended{{{s}}})",
                                         "{{community}} {{queue}}"),
               ("sum by (queue, reason) (increase(gridgov_dispatch_unattended_total"
                f"{{{s}}}[1h]))", "alerts in the last hour: {{queue}} {{reason}}"),
               description="GridgovCaseUnattended"),
        series("Cases handed back", (f"sum by (reason) (increase(gridgov_dispatch_handed_back_total{{{s}}}[1h]))",
                                     "{{reason}}"), description="after offboarding, per hour"),
    ]


def notify_panels(s: str) -> list:
    return [
        series("Deliveries by channel and outcome",
               (f"sum by (channel, outcome) (rate(gridgov_notify_deliveries_total{{{s}}}[$__rate_interval]))",
                "{{channel}} {{outcome}}"), unit="ops", description="GridgovNotifyDeliveriesFailing"),
        series("One-time code texts", (f"sum by (outcome) (rate(gridgov_notify_code_texts_total{{{s}}}"
                                       "[$__rate_interval]))", "{{outcome}}"), unit="ops"),
    ]


def points_panels(s: str) -> list:
    return [
        series("Transfers by phase and outcome",
               (f"sum by (phase, outcome) (rate(gridgov_points_transfers_total{{{s}}}[$__rate_interval]))",
                "{{phase}} {{outcome}}"), unit="ops",
               description="created, replayed (the same id again: nothing moved) or refused (no points, "
                           "different fields, a hold already resolved)"),
    ]


# What only some services count, shown in their rows.
SERVICE_PANELS: dict[str, Callable[[str], list]] = {"dispatch": dispatch_panels, "notify": notify_panels,
                                                    "points": points_panels}


def platform_health(services: list[str] | None = None) -> GrafanaDashboard:
    services = list(registry.SERVICES) if services is None else services
    rows = []
    for service in services:
        extra = SERVICE_PANELS.get(service, lambda s: [])(f'{JOB}, service="{service}"')
        rows.append((service, service_row(service) + extra))
    return dashboard("gridgov-platform", "gridgov: platform health",
                     "Every process of every service: up, HTTP, outbox, consumers, queues and dead letters. "
                     "Runbooks: docs/operating.md#alerts", rows)


# --------------------------------------------------------------------------
# 一屏知社区: the community at a glance
# --------------------------------------------------------------------------

C = 'community=~"$community"'


def part(name: str) -> str:
    """A part of the figures, added up over the chosen communities (each measured once)."""
    return f"sum(max by (community) (gridgov_dispatch_cases_{name}{{{JOB}, {C}}}))"


def programme(name: str) -> str:
    """One of the points programme's figures, added up over the chosen communities."""
    return f"sum(max by (community) (gridgov_points_{name}{{{JOB}, {C}}}))"


OPENED = f"sum(max by (community, state) (gridgov_dispatch_cases{{{JOB}, {C}}}))"


def rate_of(numerator: str, denominator: str) -> str:
    return f"{numerator} / ({denominator} > 0)"


def community_overview() -> GrafanaDashboard:
    petitions = f"max by (community, category, status) (gridgov_intake_petitions{{{JOB}, {C}}})"
    claim_buckets = f"gridgov_dispatch_claim_seconds_bucket{{{JOB}, {C}}}"
    rates = [
        stat("响应率 response rate", rate_of(part("claimed_in_time"), part("offered")), unit="percentunit",
             description="cases first claimed in time / cases offered (GET /figures)", decimals=1,
             thresholds=RATE_COLOURS),
        stat("解决率 resolution rate", rate_of(part("resolved"), OPENED), unit="percentunit",
             description="cases resolved / cases opened", decimals=1, thresholds=RATE_COLOURS),
        stat("满意率 satisfaction rate", rate_of(part("satisfied"), part("rated")), unit="percentunit",
             description="ratings of 4 or 5 / ratings", decimals=1, thresholds=RATE_COLOURS),
        stat("Overdue cases", part("overdue"), description="open cases past their step's deadline"),
        series("三率 by community", ("community:gridgov_dispatch_response_rate:ratio{" + C + "}", "响应率 {{community}}"),
               ("community:gridgov_dispatch_resolution_rate:ratio{" + C + "}", "解决率 {{community}}"),
               ("community:gridgov_dispatch_satisfaction_rate:ratio{" + C + "}", "满意率 {{community}}"),
               unit="percentunit"),
        series("Overdue and unattended cases",
               (f"max by (community) (gridgov_dispatch_cases_overdue{{{JOB}, {C}}})", "overdue {{community}}"),
               (f"sum by (community) (max by (community, queue) (gridgov_dispatch_cases_unattended{{{JOB}, {C}}}))",
                "nobody to take {{community}}")),
        series("Claim time (认领用时) in the time range",
               (f"histogram_quantile(0.5, sum by (le) (max by (community, le) (increase({claim_buckets}[$__range]))))",
                "median"),
               (f"histogram_quantile(0.9, sum by (le) (max by (community, le) (increase({claim_buckets}[$__range]))))",
                "p90"),
               unit="s", description="from a case's first offer to its claim, cases claimed in the dashboard's "
                                     "time range"),
        stat("Median claim time, every case", "histogram_quantile(0.5, sum by (le) (max by (community, le) "
             f"({claim_buckets})))", unit="s", description="as GET /figures's median_claim_seconds (to a bucket)"),
        stat("Cases claimed in the time range",
             f"sum(max by (community) (increase(gridgov_dispatch_claim_seconds_count{{{JOB}, {C}}}[$__range])))",
             decimals=0),
    ]
    petition_panels = [
        stat("Petitions", f"sum({petitions})", description="every petition ever made here"),
        series("Petitions by status", (f"sum by (status) ({petitions})", "{{status}}")),
        series("Petitions by category", (f"sum by (category) ({petitions})", "{{category}}")),
        series("Cases by state", (f"sum by (state) (max by (community, state) (gridgov_dispatch_cases{{{JOB}, {C}}}))",
                                  "{{state}}")),
    ]
    points_panels = [
        stat("积分 issued", programme("issued"), description="points paid out of the communities' issuing pools"),
        stat("积分 redeemed", programme("redeemed"), description="points spent in the points supermarkets"),
        stat("积分 outstanding", programme("outstanding"), description="points residents and households hold"),
        stat("参与率 households taking part", rate_of(programme("participating_households"), programme("households")),
             unit="percentunit", decimals=1, description="households that earned points / all households "
             "(the register's number, else those grids bound a resident to)"),
        series("Points by community", (f"max by (community) (gridgov_points_issued{{{JOB}, {C}}})",
                                       "issued {{community}}"),
               (f"max by (community) (gridgov_points_redeemed{{{JOB}, {C}}})", "redeemed {{community}}")),
        series("Redemptions by status", (f"sum by (status) (max by (community, status) "
                                         f"(gridgov_points_redemptions{{{JOB}, {C}}}))", "{{status}}")),
    ]
    community = Template(name="community", label="Community", type="query", dataSource=DATASOURCE,
                         query="label_values(gridgov_intake_petitions, community)", includeAll=True,
                         allValue=".*", default="$__all", refresh=2, sort=1)
    return dashboard("gridgov-community", "gridgov: 一屏知社区 community overview",
                     "Petitions, cases and 三率 of a community (or all): the figures of GET /figures?by=community "
                     "and of intake's petitions.",
                     [("三率 and cases", rates), ("Petitions", petition_panels),
                      ("积分 points programme", points_panels)], [community])


# --------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------

DASHBOARDS: dict[str, Callable[[], GrafanaDashboard]] = {
    "gridgov-platform.json": platform_health,
    "gridgov-community.json": community_overview,
}


def render(build: Callable[[], GrafanaDashboard]) -> str:
    return json.dumps(build().to_json_data(), cls=DashboardEncoder, indent=2, sort_keys=True,
                      ensure_ascii=False) + "\n"


def expressions(document: dict) -> list[str]:
    """Every PromQL expression of a dashboard's JSON (its panels' targets)."""
    return [t["expr"] for panel in document.get("panels", []) for t in panel.get("targets", []) if t.get("expr")]


def variable_queries(document: dict) -> dict[str, str]:
    """Each query variable's Grafana query (``label_values(metric, label)``), by name."""
    return {v["name"]: v["query"] for v in document.get("templating", {}).get("list", []) if v.get("type") == "query"}


def main(out: Path = OUT) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, build in DASHBOARDS.items():
        path = out / name
        path.write_text(render(build), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in main():
        print(path.relative_to(ROOT))
