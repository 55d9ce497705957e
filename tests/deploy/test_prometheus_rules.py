"""The alerting and recording rules (deploy/prometheus/rules/gridgov.rules.yml): valid for
promtool, every alert unit-tested both firing and not firing, and every alert tells the
operator how bad it is, what happened and where the runbook is."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from gridkit.processes import ROOT

RULES = ROOT / "deploy/prometheus/rules/gridgov.rules.yml"
UNIT_TESTS = sorted((ROOT / "deploy/prometheus/tests").glob("*.yml"))
OPERATING = ROOT / "docs/operating.md"
SEVERITIES = {"critical", "warning"}


def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool is required (apt-get install prometheus)", pytrace=False)
    return found


def run(*args: str, cwd: Path = ROOT) -> str:
    done = subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def alerts() -> dict[str, dict]:
    return {rule["alert"]: rule for rule in rules() if "alert" in rule}


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in re.findall(r"^#{1,6} (.+)$", markdown, flags=re.M)}


def test_promtool_finds_the_rules_valid():
    assert f"SUCCESS: {len(rules())} rules found" in run("check", "rules", str(RULES))


def test_every_unit_test_of_the_rules_passes():
    assert UNIT_TESTS
    run("test", "rules", *(path.name for path in UNIT_TESTS), cwd=UNIT_TESTS[0].parent)


def test_every_alert_is_unit_tested_firing_and_not_firing():
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in UNIT_TESTS:
        document = yaml.safe_load(path.read_text())
        assert document["rule_files"] == ["../rules/gridgov.rules.yml"], path.name
        for test in document["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert set(alerts()) - firing == set(), "alerts never seen firing in deploy/prometheus/tests"
    assert set(alerts()) - quiet == set(), "alerts never seen quiet in deploy/prometheus/tests"
    assert (firing | quiet) - set(alerts()) == set(), "tests of alerts that do not exist"


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook_in_operating_md():
    sections = anchors(OPERATING.read_text())
    for name, alert in alerts().items():
        assert alert["labels"]["severity"] in SEVERITIES, name
        annotations = alert["annotations"]
        assert annotations["summary"] and annotations["description"], name
        page, _, anchor = annotations["runbook_url"].partition("#")
        assert page == "docs/operating.md" and anchor == name.lower(), name
        assert anchor in sections, f"{name}: docs/operating.md has no section #{anchor}"
