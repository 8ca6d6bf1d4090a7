"""Cluster specs for the planner: node types with their GPUs, CPUs, memory, count and price.

Accepted, told apart by their keys:
- a small spec (`node_types:`, see solar_ray/plan/cluster_example.yaml);
- a Ray cluster launcher YAML (`available_node_types:`, as cluster/aws and cluster/gcp): each type's instance or
  machine type is looked up in solar_ray/plan/facts.yaml (GPU model, memory, price), its count is `max_workers`;
- a KubeRay RayCluster (`kind: RayCluster`): each group's container limits, `nvidia.com/gpu.product` node
  selector and `maxReplicas`, priced per GPU-hour and CPU-hour from facts.yaml;
- the Ray cluster a pipeline runs on (`live_cluster`), its GPU model from Ray's accelerator type.
Every figure not read from the file is recorded in `assumptions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from solar_ray.config import Strict, read_yaml, validate
from solar_ray.errors import ConfigError
from solar_ray.plan.models import facts

GB = 1e9
GIB = 2**30


@dataclass
class NodeType:
    name: str
    gpus: int = 0
    gpu: str | None = None          # GPU model, e.g. H100-80GB
    gpu_memory: float = 0.0         # bytes per GPU
    gpu_tflops: float = 0.0         # peak dense bf16 TFLOPS per GPU
    cpus: float = 0.0
    memory: float = 0.0             # host memory, bytes
    count: int = 1                  # nodes of this type the cluster may have
    price_per_hour: float | None = None
    spot: bool = False
    head: bool = False              # runs the drivers (and driver stages such as merges)


@dataclass
class ClusterSpec:
    name: str
    nodes: list[NodeType]
    assumptions: list[str] = field(default_factory=list)
    growable: bool = True  # a spec lists every node type the cluster can have; a live cluster lists today's
    adds_gpus: bool = False  # a live cluster whose autoscaler can add GPU nodes, as stages find at run time

    @property
    def head(self) -> NodeType | None:
        return next((n for n in self.nodes if n.head), None)


class NodeSpec(Strict):
    gpu: str | None = Field(default=None, description="GPU model (a key of solar_ray/plan/facts.yaml gpus, or any).")
    gpu_memory_gb: float | None = Field(default=None, gt=0, description="Memory per GPU in GB (default: facts.yaml).")
    bf16_tflops: float | None = Field(default=None, gt=0, description="Peak dense bf16 TFLOPS per GPU (default: facts).")
    gpus: int = Field(default=0, ge=0, description="GPUs per node.")
    cpus: float = Field(default=8, gt=0, description="CPUs per node.")
    memory_gb: float = Field(default=64, gt=0, description="Host memory per node in GB.")
    count: int = Field(default=1, ge=1, description="Nodes of this type.")
    price_per_hour: float | None = Field(default=None, ge=0, description="USD per node-hour.")
    spot: bool = Field(default=False, description="Spot / preemptible nodes.")
    head: bool = Field(default=False, description="The head node (runs drivers and driver stages).")


class SmallSpec(Strict):
    name: str = Field(default="cluster", description="A name for the plan's title.")
    node_types: dict[str, NodeSpec] = Field(description="Node type name -> its hardware, count and price.")


def _gpu_facts(model: str, where: str) -> dict[str, float]:
    known = facts()["gpus"]
    if model not in known:
        raise ConfigError(f"{where}: GPU model {model!r} is not in solar_ray/plan/facts.yaml; known: "
                          f"{', '.join(known)} (or give gpu_memory_gb and bf16_tflops)")
    return known[model]


def load_cluster(path: str | Path) -> ClusterSpec:
    path = Path(path)
    tree = read_yaml(path)
    if "node_types" in tree:
        return _small(tree, path)
    if "available_node_types" in tree:
        return _launcher(tree, path)
    if tree.get("kind") == "RayCluster":
        return _kuberay(tree, path)
    raise ConfigError(f"{path}: not a cluster spec (expected node_types:, a Ray launcher's available_node_types:, "
                      "or a KubeRay RayCluster)")


def _small(tree: dict[str, Any], path: Path) -> ClusterSpec:
    spec = validate(SmallSpec, tree, str(path))  # type: ignore[arg-type]
    nodes, notes = [], []
    for name, node in spec.node_types.items():
        gpu_memory, tflops = node.gpu_memory_gb, node.bf16_tflops
        if node.gpus and (gpu_memory is None or tflops is None):
            known = _gpu_facts(node.gpu or "", f"{path} node_types.{name}.gpu")
            gpu_memory, tflops = gpu_memory or known["memory_gb"], tflops or known["bf16_tflops"]
            notes.append(f"{node.gpu}: {gpu_memory:g} GB, {tflops:g} bf16 TFLOPS peak (facts.yaml)")
        nodes.append(NodeType(name, node.gpus, node.gpu, (gpu_memory or 0) * GB, tflops or 0, node.cpus,
                              node.memory_gb * GB, node.count, node.price_per_hour, node.spot, node.head))
    if not any(n.head for n in nodes):
        nodes.append(NodeType("head (assumed)", cpus=8, memory=64 * GB, head=True))
        notes.append("no node marked head: driver stages run on an assumed 8-CPU, 64 GB head, not priced")
    return ClusterSpec(spec.name, nodes, sorted(set(notes)))


def _launcher(tree: dict[str, Any], path: Path) -> ClusterSpec:
    instances = facts()["instances"]
    nodes, notes = [], [f"{path}: node counts are each type's max_workers (the autoscaler's ceiling)"]
    head_type = tree.get("head_node_type")
    for name, entry in tree["available_node_types"].items():
        node_config = entry.get("node_config", {})
        instance = node_config.get("InstanceType") or node_config.get("machineType")
        if instance not in instances:
            raise ConfigError(f"{path}: node type {name}: instance type {instance!r} is not in "
                              f"solar_ray/plan/facts.yaml instances; add it there or write a small spec")
        hw = instances[instance]
        resources = entry.get("resources", {})
        gpus = int(resources.get("GPU", hw.get("gpus", 0)))
        gpu = hw.get("gpu")
        known = _gpu_facts(gpu, f"{path} {name}") if gpus else {"memory_gb": 0, "bf16_tflops": 0}
        spot = (entry.get("labels") or {}).get("market") == "spot" or "InstanceMarketOptions" in node_config or \
            (node_config.get("scheduling") or {}).get("provisioningModel") == "SPOT"
        is_head = name == head_type
        notes.append(f"{instance}: {f'{gpus} x {gpu}, ' if gpus else ''}{hw['cpus']} vCPU, {hw['memory_gb']} GB, "
                     f"${hw['price_per_hour']}/h on demand (facts.yaml)")
        if spot:
            notes.append("spot node types are priced as on demand, and used only with --spot or where no other "
                         "type can run a stage")
        nodes.append(NodeType(name, gpus, gpu, known["memory_gb"] * GB, known["bf16_tflops"],
                              float(resources.get("CPU", hw["cpus"])), hw["memory_gb"] * GB,
                              1 if is_head else int(entry.get("max_workers", 1)), hw["price_per_hour"], spot, is_head))
    return ClusterSpec(str(tree.get("cluster_name", path.stem)), nodes, sorted(set(notes)))


def _quantity(value: Any) -> float:
    """Kubernetes quantities: '180', '500m', '1500Gi', '64G'."""
    text = str(value)
    for suffix, scale in (("Ki", 2**10), ("Mi", 2**20), ("Gi", GIB), ("Ti", 2**40), ("k", 1e3), ("M", 1e6),
                          ("G", 1e9), ("T", 1e12), ("m", 1e-3)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


def _kuberay(tree: dict[str, Any], path: Path) -> ClusterSpec:
    price = facts()["kubernetes_price"]
    spec = tree.get("spec", {})
    groups = [("head", spec.get("headGroupSpec", {}), 1, True)]
    groups += [(g.get("groupName", f"group{i}"), g, int(g.get("maxReplicas", g.get("replicas", 1))), False)
               for i, g in enumerate(spec.get("workerGroupSpecs", []))]
    nodes, notes = [], [f"{path}: node counts are each group's maxReplicas; prices per GPU-hour and CPU-hour "
                        f"from facts.yaml ({price['per_gpu_hour']}, CPU ${price['per_cpu_hour']}/h)"]
    for name, group, count, is_head in groups:
        pod = group.get("template", {}).get("spec", {})
        limits = (pod.get("containers") or [{}])[0].get("resources", {}).get("limits", {})
        gpus = int(_quantity(limits.get("nvidia.com/gpu", 0)))
        cpus = _quantity(limits.get("cpu", 1))
        label = (pod.get("nodeSelector") or {}).get("nvidia.com/gpu.product")
        gpu = facts()["gpu_labels"].get(label) if label else None
        if gpus and gpu is None:
            raise ConfigError(f"{path}: group {name}: GPU product {label!r} is not in solar_ray/plan/facts.yaml "
                              "gpu_labels; add it there or write a small spec")
        known = _gpu_facts(gpu, f"{path} {name}") if gpus else {"memory_gb": 0, "bf16_tflops": 0}
        hourly = gpus * price["per_gpu_hour"].get(gpu, 0.0) + cpus * price["per_cpu_hour"]
        nodes.append(NodeType(name, gpus, gpu, known["memory_gb"] * GB, known["bf16_tflops"], cpus,
                              _quantity(limits.get("memory", 0)), count, hourly, "spot" in name, is_head))
    return ClusterSpec(str(tree.get("metadata", {}).get("name", path.stem)), nodes, notes)


def live_cluster() -> ClusterSpec | None:
    """The Ray cluster this process is joined to, as it is now: nodes grouped by their resources (None when
    this process has not joined one)."""
    import ray

    if not ray.is_initialized():
        return None
    labels = facts()["gpu_labels"]
    groups: dict[tuple, NodeType] = {}
    notes = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        res = node.get("Resources", {})
        accelerator = next((k.split(":", 1)[1] for k in res if k.startswith("accelerator_type:")), None)
        gpus = int(res.get("GPU", 0))
        gpu = labels.get(accelerator) if accelerator else None
        known = facts()["gpus"].get(gpu, {"memory_gb": 0, "bf16_tflops": 0}) if gpu else {"memory_gb": 0,
                                                                                            "bf16_tflops": 0}
        if gpus and not gpu:
            notes.append(f"GPU model of a node unknown (Ray accelerator type {accelerator!r}): memory not checked")
        head = "node:__internal_head__" in res
        key = (gpus, gpu, res.get("CPU", 0), res.get("memory", 0), head)
        if key in groups:
            groups[key].count += 1
        else:
            groups[key] = NodeType("head" if head else f"workers{len(groups)}", gpus, gpu, known["memory_gb"] * GB,
                                   known["bf16_tflops"], res.get("CPU", 0), res.get("memory", 0), 1, None, False, head)
    from solar_ray.capacity import gpus_obtainable

    return ClusterSpec("this Ray cluster", list(groups.values()), notes, growable=False, adds_gpus=gpus_obtainable())
