"""The KubeRay manifests pass `kubectl apply`'s strict field validation on the KubeRay version the docs name:
every RayCluster / RayJob in cluster/kuberay/ is checked against that version's CRD schemas (kuberay_crds/),
unknown fields rejected; and no pod's in-memory /dev/shm may outgrow its memory limit."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
KUBERAY = REPO / "cluster" / "kuberay"
CRDS = Path(__file__).parent / "kuberay_crds"
MINIMUM = "1.6.0"  # what cluster/README.md and the manifests name
MANIFESTS = sorted(KUBERAY.glob("*.yaml"))


def ray_documents() -> list[tuple[str, dict]]:
    return [(path.name, doc) for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text())
            if doc and doc.get("apiVersion", "").startswith("ray.io/")]


def schema(version: str, kind: str, api_version: str) -> dict:
    crd = json.loads(gzip.decompress((CRDS / f"v{version}" / f"{kind}.json.gz").read_bytes()))
    return crd["versions"][api_version.split("/", 1)[1]]


def field_errors(value, node: dict, path: str = "") -> list[str]:
    """What strict validation reports, as `path: problem`. Hand-written rather than jsonschema: Kubernetes
    schemas reject unknown fields only by convention (no `additionalProperties: false`) and mark int-or-string and
    free-form fields with x-kubernetes-* keys that JSON Schema validators ignore."""
    if node.get("x-kubernetes-int-or-string"):
        return [] if isinstance(value, (int, str)) and not isinstance(value, bool) else [f"{path}: not int or string"]
    kind = node.get("type")
    expected = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int, "number": (int, float)}
    if kind in expected and (not isinstance(value, expected[kind]) or (kind in ("integer", "number")
                                                                        and isinstance(value, bool))):
        return [f"{path}: expected {kind}, got {type(value).__name__}"]
    if "enum" in node and value not in node["enum"]:
        return [f"{path}: {value!r} not one of {node['enum']}"]
    errors = []
    if isinstance(value, dict):
        properties = node.get("properties")
        errors += [f"{path}.{key}: required field missing" for key in node.get("required", []) if key not in value]
        for key, child in value.items():
            if properties is not None and key in properties:
                errors += field_errors(child, properties[key], f"{path}.{key}")
            elif isinstance(node.get("additionalProperties"), dict):
                errors += field_errors(child, node["additionalProperties"], f"{path}.{key}")
            elif properties is not None and not node.get("x-kubernetes-preserve-unknown-fields"):
                errors.append(f"{path}.{key}: unknown field")
    elif isinstance(value, list) and "items" in node:
        for i, item in enumerate(value):
            errors += field_errors(item, node["items"], f"{path}[{i}]")
    return errors


def test_every_manifest_is_checked():
    kinds = {doc["kind"] for _, doc in ray_documents()}
    assert kinds == {"RayCluster", "RayJob"} and len(ray_documents()) == 5


@pytest.mark.parametrize("name, doc", ray_documents(), ids=[name for name, _ in ray_documents()])
def test_manifest_passes_strict_validation_on_the_documented_minimum(name, doc):
    errors = field_errors(doc, schema(MINIMUM, doc["kind"], doc["apiVersion"]))
    assert not errors, f"{name} on KubeRay {MINIMUM}: {errors}"


def test_the_version_before_the_minimum_rejects_the_token_secret():
    # Why 1.6.0: on 1.5.1 `authOptions.secretName` is an unknown field and kubectl apply refuses the manifests.
    errors = [e for name, doc in ray_documents() for e in field_errors(doc, schema("1.5.1", doc["kind"], doc["apiVersion"]))]
    assert errors and all(e.endswith("authOptions.secretName: unknown field") for e in errors), errors


def test_the_walker_rejects_what_kubectl_rejects():
    _, doc = next((n, d) for n, d in ray_documents() if d["kind"] == "RayJob")
    node = schema(MINIMUM, "RayJob", doc["apiVersion"])
    bad = json.loads(json.dumps(doc))
    bad["spec"]["shutdownAfterJobFinishes"] = "yes"
    bad["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containerz"] = []
    del bad["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["name"]
    errors = field_errors(bad, node)
    assert ".spec.shutdownAfterJobFinishes: expected boolean, got str" in errors
    assert ".spec.rayClusterSpec.headGroupSpec.template.spec.containerz: unknown field" in errors
    assert ".spec.rayClusterSpec.headGroupSpec.template.spec.containers[0].name: required field missing" in errors


def test_docs_name_the_minimum_version():
    assert f"KubeRay operator >= {MINIMUM}" in (REPO / "cluster" / "README.md").read_text()
    assert f"KubeRay >= {MINIMUM}" in (KUBERAY / "raycluster.yaml").read_text()
    assert "1.5.1" not in (KUBERAY / "raycluster.yaml").read_text()


def gibibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)([A-Za-z]*)", str(quantity)).groups()
    scale = {"Gi": 1, "Mi": 1 / 1024, "Ti": 1024, "G": 1e9 / 2**30, "M": 1e6 / 2**30, "": 1 / 2**30}[unit]
    return float(number) * scale


def pod_templates(doc: dict):
    spec = doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]
    yield "head", spec["headGroupSpec"]["template"]["spec"]
    for group in spec.get("workerGroupSpecs", []):
        yield group["groupName"], group["template"]["spec"]


@pytest.mark.parametrize("name, doc", ray_documents(), ids=[name for name, _ in ray_documents()])
def test_shared_memory_fits_in_each_pods_memory_limit(name, doc):
    # An in-memory emptyDir counts against the pod's memory limit: a /dev/shm larger than the limit lets the
    # object store or NCCL fill it and get the pod OOM-killed.
    for group, pod in pod_templates(doc):
        limit = sum(gibibytes(c["resources"]["limits"]["memory"]) for c in pod["containers"])
        for volume in pod.get("volumes", []):
            empty_dir = volume.get("emptyDir") or {}
            if empty_dir.get("medium") == "Memory":
                assert "sizeLimit" in empty_dir, f"{name} {group}: {volume['name']} has no sizeLimit"
                assert gibibytes(empty_dir["sizeLimit"]) <= limit, \
                    f"{name} {group}: {volume['name']} {empty_dir['sizeLimit']} > memory limit {limit:g}Gi"
