"""Write the field inventory of a KubeRay CRD: its openAPIV3Schema with what validation needs (types, properties,
items, required, enums, the x-kubernetes-* escape hatches) and no descriptions or defaults.

    git -C kuberay show v1.6.0:ray-operator/config/crd/bases/ray.io_rayjobs.yaml | \
        python tests/cluster/kuberay_crds/reduce.py | gzip -9 -n > tests/cluster/kuberay_crds/v1.6.0/RayJob.json.gz
"""

from __future__ import annotations

import json
import sys

import yaml

KEEP = {"type", "properties", "items", "additionalProperties", "required", "enum",
        "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string"}


def reduce_schema(node):
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key not in KEEP:
            continue
        if key == "properties":
            out[key] = {name: reduce_schema(child) for name, child in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = reduce_schema(value)
        else:
            out[key] = value
    return out


def main() -> None:
    crd = yaml.safe_load(sys.stdin)
    versions = {v["name"]: reduce_schema(v["schema"]["openAPIV3Schema"]) for v in crd["spec"]["versions"]}
    json.dump({"group": crd["spec"]["group"], "kind": crd["spec"]["names"]["kind"], "versions": versions},
              sys.stdout, separators=(",", ":"), sort_keys=True)


if __name__ == "__main__":
    main()
