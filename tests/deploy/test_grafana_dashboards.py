"""Grafana dashboards come from one source (deploy/grafana/dashboards.py): the committed
JSON is what it generates, every registered service has its row, and every recording rule
a panel reads exists. (tests/e2e/test_alerts.py runs every expression against a real
Prometheus scraping a running platform.)"""

from __future__ import annotations

import importlib.util
import json
import re

import yaml

from gridkit import registry
from gridkit.processes import ROOT

SOURCE = ROOT / "deploy/grafana/dashboards.py"
RULES = ROOT / "deploy/prometheus/rules/gridgov.rules.yml"


def load_source():
    spec = importlib.util.spec_from_file_location("gridgov_dashboards", SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dashboards = load_source()


def committed(name: str) -> dict:
    return json.loads((dashboards.OUT / name).read_text(encoding="utf-8"))


def test_the_committed_dashboards_are_what_the_source_generates(tmp_path):
    written = dashboards.main(tmp_path)
    assert sorted(p.name for p in dashboards.OUT.glob("*.json")) == sorted(p.name for p in written), \
        "a dashboard JSON without a source, or a source without its JSON: run `make dashboards`"
    for path in written:
        assert path.read_text(encoding="utf-8") == (dashboards.OUT / path.name).read_text(encoding="utf-8"), \
            f"{path.name} differs from deploy/grafana/dashboards.py: run `make dashboards` (never edit the JSON)"


def test_every_registered_service_has_its_row_of_panels_in_platform_health():
    document = committed("gridgov-platform.json")
    rows: dict[str, list[str]] = {}
    current = None
    for panel in document["panels"]:
        if panel["type"] == "row":
            current = rows.setdefault(panel["title"], [])
        else:
            current.extend(t["expr"] for t in panel["targets"])
    assert list(rows) == list(registry.SERVICES)
    for service, exprs in rows.items():
        assert exprs and all(f'service="{service}"' in expr for expr in exprs), service
        assert any(expr.startswith("up{") for expr in exprs), f"{service}: no processes-up panel"


def test_a_service_registered_tomorrow_gets_its_row_from_the_registry():
    rows = [p.title for p in dashboards.platform_health([*registry.SERVICES, "tomorrow"]).panels
            if type(p).__name__ == "RowPanel"]
    assert rows == [*registry.SERVICES, "tomorrow"]


def test_every_recording_rule_a_panel_reads_is_defined():
    recorded = {rule["record"] for group in yaml.safe_load(RULES.read_text())["groups"]
                for rule in group["rules"] if "record" in rule}
    used = set()
    for path in dashboards.OUT.glob("*.json"):
        for expr in dashboards.expressions(json.loads(path.read_text(encoding="utf-8"))):
            used |= set(re.findall(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b", expr))
    assert used and used <= recorded, used - recorded


def test_every_panel_reads_the_chosen_prometheus_with_bounded_business_labels():
    for path in dashboards.OUT.glob("*.json"):
        document = json.loads(path.read_text(encoding="utf-8"))
        ids = [p["id"] for p in document["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for panel in document["panels"]:
            for t in panel.get("targets", []):
                assert t["datasource"] == "${datasource}", (path.name, panel["title"])
                assert not re.search(r"\b(petition|case|user|person|reporter)_id\b", t["expr"]), t["expr"]
