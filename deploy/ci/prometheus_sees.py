"""``make stack-check``: the stack's Prometheus scrapes every process of every service in
the registry (job ``gridgov``, labels ``service`` and ``process``) and finds it up, the
broker too, and has loaded every alert rule file of deploy/prometheus/rules.

    python deploy/ci/prometheus_sees.py http://127.0.0.1:9090 [seconds]
"""

from __future__ import annotations

import json
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from gridkit import registry

RULES = Path(__file__).resolve().parents[1] / "prometheus" / "rules"


def get(base: str, path: str, **query: str) -> dict:
    url = f"{base}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)["data"]


def problems(base: str) -> list[str]:
    wanted = {(service, process) for service in registry.SERVICES for process in ("web", "worker")}
    targets = get(base, "/api/v1/targets", state="active")["activeTargets"]
    health = {(t["labels"].get("service"), t["labels"].get("process")): (t["health"], t["lastError"])
              for t in targets if t["labels"].get("job") == "gridgov"}
    found = [f"no gridgov target for {s} {p}" for s, p in sorted(wanted - set(health))]
    found += [f"{s} {p} is {h}: {error}" for (s, p), (h, error) in sorted(health.items()) if h != "up"]
    found += [f"broker target is {t['health']}: {t['lastError']}" for t in targets
              if t["labels"].get("job") == "rabbitmq" and t["health"] != "up"]
    up = get(base, "/api/v1/query", query='up{job="gridgov"}')["result"]
    if sorted(r["value"][1] for r in up) != ["1"] * len(wanted):
        found.append(f'up{{job="gridgov"}} is not 1 for all {len(wanted)} processes: '
                     + ", ".join(f"{r['metric'].get('instance')}={r['value'][1]}" for r in up))
    loaded = {Path(group["file"]).name for group in get(base, "/api/v1/rules")["groups"]}
    for path in sorted(RULES.glob("*.yml")):
        if (yaml.safe_load(path.read_text()) or {}).get("groups") and path.name not in loaded:
            found.append(f"rule file {path.name} is not loaded")
    return found


def main() -> int:
    base, patience = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 90
    deadline = time.monotonic() + patience
    while True:
        try:
            found = problems(base)
        except OSError as exc:
            found = [f"Prometheus at {base}: {exc}"]
        if not found:
            print(f"Prometheus sees {2 * len(registry.SERVICES)} gridgov processes up, the broker, "
                  f"and {len(list(RULES.glob('*.yml')))} rule file(s)")
            return 0
        if time.monotonic() > deadline:
            print("Prometheus does not see the platform:\n  " + "\n  ".join(found), file=sys.stderr)
            return 1
        time.sleep(2)


if __name__ == "__main__":
    sys.exit(main())
