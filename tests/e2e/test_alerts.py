"""Monitoring proven on a running platform: a real Prometheus on loopback scrapes every web
and worker process (job "gridgov", labels service and process, as in production) with the
real rules, a small petition journey gives the business figures data, and then

* every PromQL expression of the generated Grafana dashboards returns data (template
  variables filled in: the journey's community, ranges of a few minutes);
* a worker stopped → GridgovProcessDown fires for that service and process, and no other;
* a poison message on a consumer's queue → GridgovDeadLetters fires for that queue.

Prometheus scrapes and evaluates every second, and the test's copy of the rules has every
alert's ``for:`` removed (a minute of "down" before paging is production's choice; the
expressions and labels are the real ones). Workers measure at scrape time every second
(``GRIDGOV_METRICS_CACHE_SECONDS=1``).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import signal
import subprocess
import uuid
from urllib.parse import urlparse

import kombu
import pytest
import requests
import yaml

from gridkit import registry
from gridkit.bus import CONTENT_TYPE
from gridkit.processes import ROOT, free_port, start_platform
from gridkit.testkit import AMQP_HOST, RUN_ID, rabbitmqctl, wait_for

from .conftest import DATA_KEY
from .journey import PROPAGATION, Gridgov, small_world_cast, wait_until_dispatch_has_the_world

RULES = ROOT / "deploy/prometheus/rules/gridgov.rules.yml"
COMMUNITY = "JN-1-1"  # the small world's community (journey.small_world_cast)
# Grafana's own variables, as a dashboard over the last few minutes fills them in.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "10m", "$__interval": "15s"}


def load_dashboards():
    spec = importlib.util.spec_from_file_location("gridgov_dashboards", ROOT / "deploy/grafana/dashboards.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Prometheus:
    """A real Prometheus server on loopback and its HTTP API."""

    def __init__(self, directory, targets: dict[tuple[str, str], str]):
        binary = shutil.which("prometheus")
        if not binary:
            pytest.fail("prometheus is required (apt-get install prometheus)", pytrace=False)
        rules = yaml.safe_load(RULES.read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                rule.pop("for", None)  # at once: the test cannot wait production's minutes
        (directory / "rules.yml").write_text(yaml.safe_dump(rules, allow_unicode=True))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": ["rules.yml"],
            "scrape_configs": [{"job_name": "gridgov", "static_configs": [
                {"targets": [urlparse(url).netloc], "labels": {"service": service, "process": process}}
                for (service, process), url in sorted(targets.items())]}],
        }
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = open(directory / "prometheus.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [binary, f"--config.file={directory / 'prometheus.yml'}", f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address={urlparse(self.url).netloc}"],
            cwd=directory, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self._ready, timeout=60, interval=0.1, message="Prometheus to be ready")

    def _ready(self) -> bool:
        assert self.process.poll() is None, "prometheus exited: see prometheus.log"
        try:
            return requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def query(self, expr: str) -> list[dict]:
        answer = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert answer["status"] == "success", (expr, answer)
        return answer["data"]["result"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def unhealthy_rules(self) -> list[str]:
        groups = requests.get(f"{self.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        return [f"{r.get('name')}: {r.get('lastError')}" for g in groups for r in g["rules"] if r["health"] != "ok"]

    def firing(self, name: str) -> list[dict]:
        alerts = requests.get(f"{self.url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == name and a["state"] == "firing"]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture(scope="module")
def vhost():
    """A vhost of this module's own: the dead letters it counts are only the ones it made."""
    name = f"gridgov-alerts-{RUN_ID}"
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    yield f"amqp://guest:guest@{AMQP_HOST}/{name}"
    rabbitmqctl("delete_vhost", name)


@pytest.fixture(scope="module")
def watched(fresh_pg_database, vhost, tmp_path_factory, sms_gateway):
    """The platform, every process scraped by a real Prometheus with the real rules."""
    platform = start_platform(registry.available(), database_url=lambda name: fresh_pg_database(f"alerts_{name}"),
                              bus_url=vhost, logs=tmp_path_factory.mktemp("alerts"), data_key=DATA_KEY,
                              extra_env={"GRIDGOV_SMS_URL": sms_gateway.url, "GRIDGOV_METRICS_CACHE_SECONDS": "1"},
                              web_workers=1)
    try:
        targets = {(s, "web"): url for s, url in platform.urls.items()}
        targets |= {(s, "worker"): url for s, url in platform.worker_urls.items()}
        prometheus = Prometheus(tmp_path_factory.mktemp("prometheus"), targets)
        try:
            yield platform, prometheus
        finally:
            prometheus.stop()
    finally:
        platform.stop()


def a_small_journey(platform, sms_gateway, prometheus: Prometheus) -> None:
    """A petition reported, routed, claimed, resolved and rated in the small world's community."""
    platform.gridgov("create-sysadmin", "--username", "alerts-root",
                     extra_env={"GRIDGOV_ADMIN_PASSWORD": "alerts-root-password"})
    gg = Gridgov(platform.urls, sms=sms_gateway)
    cast = small_world_cast(gg, gg.login("sysadmin", username="alerts-root", password="alerts-root-password"))
    wait_until_dispatch_has_the_world(gg, cast.county)

    def submitted():
        answer = gg.post("intake", "/petitions", cast.resident, json={
            "category": cast.category, "description": "楼道灯坏了，晚上很黑", "place": cast.place})
        if answer.status_code == 422 and "place" in answer.json().get("errors", {}):
            return None  # intake has not heard of the place from grids yet
        assert answer.status_code == 201, answer.text
        return answer.json()

    petition = wait_for(submitted, timeout=PROPAGATION, interval=0.5, message="intake to accept the place")
    case_id = wait_for(lambda: gg.get("intake", f"/petitions/{petition['id']}", cast.resident,
                                      expect=200).json()["case_id"],
                       timeout=PROPAGATION, interval=0.2, message="the case to be opened")
    # The community's claim-time series is there at zero before the claim, as in production
    # (a case opened some time before its claim), so that increase() counts the claim.
    wait_for(lambda: prometheus.value(f'gridgov_dispatch_claim_seconds_count{{community="{COMMUNITY}"}}') == 0,
             timeout=PROPAGATION, interval=0.3, message="the community's claim times in Prometheus")
    gg.post("dispatch", f"/cases/{case_id}/claim", cast.workers[0], expect=201)
    gg.post("dispatch", f"/cases/{case_id}/resolve", cast.workers[0], json={"result": "已更换灯泡"}, expect=200)
    wait_for(lambda: gg.get("intake", f"/petitions/{petition['id']}", cast.resident, expect=200).json()["status"]
             == "resolved", timeout=PROPAGATION, interval=0.2, message="the resident to see it resolved")
    gg.post("intake", f"/petitions/{petition['id']}/rating", cast.resident, json={"rating": 5}, expect=200)
    # The community's points programme: the register's number of households (its share of
    # households taking part is then 0 of 40, not undefined).
    gg.call("PUT", "points", f"/communities/{COMMUNITY}/programme", cast.community_admin,
            json={"households": 40}, expect=200)


def filled_in(expr: str, variables: dict[str, str]) -> str:
    for name in sorted(variables, key=len, reverse=True):  # $__rate_interval before $__range
        expr = expr.replace(name, variables[name])
    return expr


def expressions_without_data(prometheus: Prometheus) -> list[str]:
    """Every dashboard expression, with its variables filled in, that Prometheus answers with nothing."""
    dashboards = load_dashboards()
    missing = []
    for path in sorted(dashboards.OUT.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        for name, query in dashboards.variable_queries(document).items():
            metric, label = query.removeprefix("label_values(").removesuffix(")").split(", ")
            values = requests.get(f"{prometheus.url}/api/v1/label/{label}/values",
                                  params={"match[]": metric}, timeout=10).json()["data"]
            if COMMUNITY not in values:
                missing.append(f"{path.name}: variable {name}: {query} gives {values}")
        for expr in dashboards.expressions(document):
            query = filled_in(expr, GRAFANA_VARIABLES | {"$community": COMMUNITY})
            if not prometheus.query(query):
                missing.append(f"{path.name}: {query}")
    return missing


def test_every_dashboard_expression_returns_data_from_prometheus_after_a_journey(watched, sms_gateway):
    platform, prometheus = watched
    a_small_journey(platform, sms_gateway, prometheus)
    rated = f'gridgov_dispatch_cases_satisfied{{community="{COMMUNITY}"}}'
    wait_for(lambda: prometheus.value(rated) == 1, timeout=PROPAGATION, interval=0.3,
             message="the rating to reach dispatch's figures in Prometheus")

    # Scrapes and rule evaluations go on every second, and on a loaded machine one may time
    # out (its series are stale until the next): ask again until every expression has data.
    missing: list[str] = []

    def every_expression_answered() -> bool:
        missing[:] = expressions_without_data(prometheus)
        return not missing

    try:
        wait_for(every_expression_answered, timeout=30, interval=1,
                 message="every dashboard expression to return data")
    except AssertionError:
        raise AssertionError("expressions that return nothing:\n" + "\n".join(missing)
                             + f"\nrules not evaluated: {prometheus.unhealthy_rules()}") from None

    # The figures are the journey's: one petition, closed, claimed in time, resolved, rated 5.
    c = f'community="{COMMUNITY}"'
    queries = {
        "petitions": f"sum(gridgov_intake_petitions{{{c}}})",
        "closed petitions": f'sum(gridgov_intake_petitions{{{c}, status="closed"}})',
        **{f"{rate} rate": f"community:gridgov_dispatch_{rate}_rate:ratio{{{c}}}"
           for rate in ("response", "resolution", "satisfaction")},
        "claims": f"max(gridgov_dispatch_claim_seconds_count{{{c}}})",
        "overdue": f"max(gridgov_dispatch_cases_overdue{{{c}}})",
    }
    expected = {"petitions": 1, "closed petitions": 1, "response rate": 1, "resolution rate": 1,
                "satisfaction rate": 1, "claims": 1, "overdue": 0}

    def figures() -> dict[str, float | None]:
        return {name: prometheus.value(query) for name, query in queries.items()}

    try:
        wait_for(lambda: figures() == expected, timeout=30, interval=1, message="the journey's figures")
    except AssertionError:
        raise AssertionError(f"the journey's figures: {figures()}, expected {expected}") from None
    assert not prometheus.firing("GridgovDeadLetters")


def test_a_stopped_worker_and_a_poison_message_fire_their_alerts(watched):
    platform, prometheus = watched
    platform.kill("notify-worker", signal.SIGTERM)

    def down() -> list[tuple[str, str, str, str]]:
        return sorted((a["labels"]["service"], a["labels"]["process"], a["labels"]["severity"],
                       a["annotations"]["runbook_url"]) for a in prometheus.firing("GridgovProcessDown"))

    # (A scrape that times out on a loaded machine fires it for a second too: wait until
    # the stopped worker is the one process down.)
    wait_for(lambda: down() == [("notify", "worker", "critical", "docs/operating.md#gridgovprocessdown")],
             timeout=60, interval=0.3, message="GridgovProcessDown for notify's worker alone")

    queue = next(iter(registry.load("dispatch").subscriptions.queues))  # a running worker's queue
    with kombu.Connection(platform.env["GRIDGOV_BUS_URL"], transport_options={"confirm_publish": True}) as conn:
        kombu.Producer(conn.default_channel).publish(
            b"{not an event", exchange="", routing_key=queue, content_type=CONTENT_TYPE,
            content_encoding="utf-8", message_id=str(uuid.uuid4()), delivery_mode=2)
    dead = wait_for(lambda: prometheus.firing("GridgovDeadLetters"), timeout=60, interval=0.3,
                    message="GridgovDeadLetters to fire")
    assert [(a["labels"]["queue"], a["labels"]["severity"], float(a["value"])) for a in dead] == [
        (queue, "warning", 1.0)]
