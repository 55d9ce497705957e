"""Validate every custom resource in rendered manifests against its schema, strictly.

kubernetes-validate checks the built-in kinds (Deployment, NetworkPolicy, …) and skips the
operators' kinds with a warning; this checks those: RabbitmqCluster, User, Permission, Vhost,
Policy (RabbitMQ operators), Cluster, ScheduledBackup, ObjectStore (CloudNativePG and its
Barman Cloud plugin), ScaledObject, TriggerAuthentication (KEDA), ServiceMonitor,
PrometheusRule (Prometheus Operator).

Schemas come from k8s/schemas/<group>/<version>/<Kind>.yaml (see its README: the fields
gridgov uses, transcribed from each operator's CRD), or, with --crds DIR, from the operators'
own CustomResourceDefinitions (e.g. `kubectl get crd -o yaml` of a cluster that runs them).
Either way the check is the API server's strict field validation: an object may carry no field
its schema does not declare, unless the schema says x-kubernetes-preserve-unknown-fields.
A custom resource with no schema at all is an error, so a new kind cannot slip through.

    python k8s/tools/check_crs.py build/k8s/prod.yaml [--crds DIR]
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import jsonschema
import yaml

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"

# What kustomize writes into an object's metadata; anything else (a typo such as `label:`)
# is refused, as the API server's strict validation would.
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "maxLength": 253, "pattern": DNS_SUBDOMAIN},
        "namespace": {"type": "string", "maxLength": 63, "pattern": DNS_SUBDOMAIN},
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
    },
}


def is_builtin(api_version: str) -> bool:
    """Kinds of Kubernetes itself: the core group (``v1``), ``apps``, ``batch``, ``policy``,
    ``autoscaling`` and the ``*.k8s.io`` groups. Every other group is an operator's."""
    group = api_version.rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")


def strict(schema: dict) -> dict:
    """The schema as the API server applies it to a structural schema: unknown fields refused
    (unless x-kubernetes-preserve-unknown-fields), int-or-string and nullable spelled out."""
    node = dict(schema)
    if node.pop("x-kubernetes-int-or-string", False):
        node.pop("type", None)
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.pop("nullable", False) and "type" in node:
        node["type"] = [node["type"], "null"]
    if "properties" in node:
        node["properties"] = {name: strict(sub) for name, sub in node["properties"].items()}
        if "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = strict(node["additionalProperties"])
    if isinstance(node.get("items"), dict):
        node["items"] = strict(node["items"])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in node:
            node[key] = [strict(sub) for sub in node[key]]
    return node


def object_schema(open_api: dict) -> dict:
    """A whole object's schema from a CRD's openAPIV3Schema (metadata: ObjectMeta)."""
    schema = copy.deepcopy(open_api)
    schema.setdefault("properties", {})
    schema["properties"]["metadata"] = OBJECT_META
    schema["properties"].setdefault("apiVersion", {"type": "string"})
    schema["properties"].setdefault("kind", {"type": "string"})
    schema["properties"].pop("status", None)  # written by the operator, never by us
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
    return strict(schema)


def schemas_from_dir(root: Path) -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) → schema, from k8s/schemas/<group>/<version>/<Kind>.yaml."""
    found = {}
    for path in sorted(root.glob("*/*/*.yaml")):
        group, version, kind = path.parent.parent.name, path.parent.name, path.stem
        found[(f"{group}/{version}", kind)] = object_schema(yaml.safe_load(path.read_text(encoding="utf-8")))
    return found


def schemas_from_crds(root: Path) -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) → schema, from CustomResourceDefinition files (any *.yaml under root,
    several documents or a List each)."""
    found = {}
    for path in sorted(root.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            items = doc.get("items", []) if doc and doc.get("kind") == "List" else [doc]
            for crd in items:
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                spec = crd["spec"]
                for version in spec["versions"]:
                    if version.get("served", True) and "schema" in version:
                        key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                        found[key] = object_schema(version["schema"]["openAPIV3Schema"])
    return found


def check(paths: list[Path], schemas: dict[tuple[str, str], dict]) -> list[str]:
    problems = []
    validators: dict[tuple[str, str], jsonschema.Draft7Validator] = {}
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not doc or is_builtin(doc.get("apiVersion", "")):
                continue
            key = (doc.get("apiVersion", ""), doc.get("kind", ""))
            name = f"{path}: {key[1]} {doc.get('metadata', {}).get('name', '?')} ({key[0]})"
            schema = schemas.get(key)
            if schema is None:
                problems.append(f"{name}: no schema for this kind (add k8s/schemas/{key[0]}/{key[1]}.yaml)")
                continue
            validator = validators.setdefault(key, jsonschema.Draft7Validator(schema))
            for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
                where = "/".join(str(p) for p in error.absolute_path) or "(object)"
                problems.append(f"{name}: {where}: {error.message}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="rendered manifests (kubectl kustomize …)")
    parser.add_argument("--crds", type=Path, help="validate against the CRDs in this folder instead")
    args = parser.parse_args(argv)
    schemas = schemas_from_crds(args.crds) if args.crds else schemas_from_dir(SCHEMAS)
    problems = check(args.files, schemas)
    for problem in problems:
        print(problem, file=sys.stderr)
    source = f"the CRDs in {args.crds}" if args.crds else "k8s/schemas"
    if problems:
        print(f"{len(problems)} problem(s) in custom resources (schemas: {source})", file=sys.stderr)
        return 1
    count = sum(1 for path in args.files for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
                if doc and not is_builtin(doc.get("apiVersion", "")))
    print(f"{count} custom resources valid against {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
