"""The plan of an experiment on a cluster: per stage, where it runs, memory per device by part, whether it fits,
work, hours, disk and cost; totals, the critical path and the schedule `parallel` allows.

Each stage's figures come from its own contract (`needs`, `workload`; solar_ray/contract.py). The planner adds
only the cluster: it puts each stage on the cheapest node type it fits (on-demand types unless `spot`), turns
FLOPs into hours at a stated MFU, and hours into cost at the node type's price.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from solar_ray import contract
from solar_ray.contract import StageNeeds, Workload
from solar_ray.errors import ConfigError
from solar_ray.plan.cluster import GB, ClusterSpec, NodeType
from solar_ray.plan.models import PlanContext

SHORT = {"weights": "w", "gradients": "g", "optimizer": "opt", "ZeRO-3 gather buffer": "gather",
         "activations": "act", "logits": "logits", "reference weights": "ref", "KV cache": "kv",
         "vLLM overhead": "vllm", "eval batch": "batch"}


# A stage's status in a plan. "may run": its own artifact is current, but a stage above it will run, and the run
# makes it again only if that stage's new artifact differs (an input re-built with the same files leaves it cached).
# The plan's figures count it with the stages that will run: an upper bound.
WILL_RUN, MAY_RUN, CACHED, NOT_SELECTED = "will run", "may run", "cached", "not selected"
RUNNING = (WILL_RUN, MAY_RUN)


@dataclass
class StagePlan:
    name: str
    kind: str
    status: str
    needs: StageNeeds
    workload: Workload
    node: NodeType | None = None
    devices: int = 0
    nodes: int = 0
    memory: dict[str, float] = field(default_factory=dict)  # bytes per device, the filled part included
    need: float = 0.0               # bytes per device the stage cannot do without
    limit: float | None = None      # bytes per device it may use
    fits: bool | None = None        # None: not estimated (size unknown, or driver work)
    problem: str = ""
    warning: str = ""
    hours: float | None = None
    cost: float | None = None

    @property
    def disk(self) -> float:
        return sum(self.workload.disk.values())


@dataclass
class Plan:
    cluster: ClusterSpec | None
    stages: dict[str, StagePlan]
    parents: dict[str, set[str]]
    parallel: int
    mfu: float
    inference_mfu: float
    assumptions: list[str]
    critical_path: list[str] = field(default_factory=list)
    makespan: float | None = None   # hours, scheduled with `parallel` and the node counts

    def problems(self) -> list[str]:
        return [s.problem for s in self.stages.values() if s.problem and s.status in RUNNING]

    def warnings(self) -> list[str]:
        return [s.warning for s in self.stages.values() if s.warning and s.status in RUNNING]


def make_plan(pipe: Any, cluster: ClusterSpec | None, *, statuses: dict[str, str] | None = None, mfu: float = 0.4,
              inference_mfu: float = 0.15, spot: bool = False) -> Plan:
    """Plan every stage of a loaded Pipeline (`pipe`: its order, configs, parents, root and experiment)."""
    ctx = PlanContext({pipe.root / name: config for name, config in pipe.configs.items()})
    stages = {}
    for name in pipe.order:
        config = pipe.configs[name]
        stage = StagePlan(name, config.stage, (statuses or {}).get(name, WILL_RUN), contract.needs(config),
                          contract.workload(config, ctx))
        if cluster is not None:
            _place(stage, cluster, mfu, inference_mfu, spot, ctx)
        else:
            _memory(stage, None, stage.workload.devices or 0)
        stages[name] = stage
    notes = [f"training MFU {mfu:.0%} of peak dense bf16; inference (vLLM decode, scoring) MFU {inference_mfu:.0%}",
             "training FLOPs 6 N per token (+2 N for a DPO reference forward); inference 2 N per scored or "
             "generated token (attention FLOPs left out)",
             "memory in GB of 10^9 bytes; a figure above "
             f"{ctx.assume['near_limit']:.0%} of its limit is flagged as near"]
    notes += list(ctx.used.values()) + (cluster.assumptions if cluster else [])
    for stage in stages.values():
        notes += [f"{stage.name}: {note}" for note in stage.workload.notes]
    plan = Plan(cluster, stages, {n: set(pipe.parents[n]) for n in pipe.order}, pipe.experiment.parallel, mfu,
                inference_mfu, notes)
    plan.critical_path = critical_path(plan)
    plan.makespan = schedule(plan) if cluster else None
    return plan


# ------------------------------------------------------------------------------------------ placing


def _memory(stage: StagePlan, node: NodeType | None, actors_per_node: int) -> None:
    """Fill in memory per device, what it needs, its limit and whether it fits, on `node`."""
    w = stage.workload
    stage.memory = dict(w.memory)
    if not w.memory:
        return
    stage.need = sum(stage.memory.values())
    if node is None:
        return
    if w.device == "gpu":
        stage.limit = node.gpu_memory
    elif w.device == "cpu":
        stage.limit = node.memory / max(1, actors_per_node)
    else:
        stage.limit = node.memory
    if w.fill:
        part, share, least = w.fill
        cap = share * stage.limit
        stage.memory[part] = max(0.0, cap - stage.need)
        stage.need += least
        stage.limit = cap
    stage.fits = stage.need <= stage.limit


def _hours(stage: StagePlan, node: NodeType, mfu: float, inference_mfu: float, ctx: PlanContext) -> float | None:
    w = stage.workload
    if not (w.train_flops or w.infer_flops) or not stage.devices:
        return None
    if w.device == "gpu":
        rate = stage.devices * node.gpu_tflops * 1e12
        return (w.train_flops / mfu + w.infer_flops / inference_mfu) / rate / 3600
    gflops = ctx.note("cpu_gflops_per_core", "CPU actors: {value} sustained fp32 GFLOPS per core")
    return (w.train_flops + w.infer_flops) / (stage.devices * w.cpus_per_device * gflops * 1e9) / 3600


def _try(stage: StagePlan, node: NodeType, mfu: float, inference_mfu: float, ctx: PlanContext) -> StagePlan:
    w = stage.workload
    trial = StagePlan(stage.name, stage.kind, stage.status, stage.needs, w, node)
    if w.device == "gpu":
        available = node.gpus * node.count
        trial.devices = w.devices if w.devices is not None else available
        trial.nodes = math.ceil(trial.devices / node.gpus)
        _memory(trial, node, 1)
        if w.per_worker > node.gpus:
            trial.fits, trial.problem = False, (f"stage '{stage.name}': {w.per_worker} GPUs per worker, a {node.name} "
                                                f"node has {node.gpus}")
        elif trial.devices > available:
            trial.fits, trial.problem = False, (f"stage '{stage.name}': {trial.devices} GPUs needed, {node.name} has "
                                                f"{available} ({node.count} x {node.gpus})")
    else:
        per_node = max(1, int(node.cpus // w.cpus_per_device)) if w.device == "cpu" else 1
        available = per_node * node.count
        trial.devices = (w.devices if w.devices is not None else available) if w.device == "cpu" else 0
        trial.nodes = math.ceil(trial.devices / per_node) if trial.devices else 0
        _memory(trial, node, min(per_node, trial.devices or 1))
    if trial.fits is False and trial.problem:
        return trial
    if trial.fits is False:
        unit = {"gpu": f"per GPU ({node.gpu})", "cpu": f"per actor ({node.name} memory / actors on a node)",
                "driver": f"on the head ({node.name})"}[w.device]
        needed = {**w.memory, **({w.fill[0]: w.fill[2]} if w.fill else {})}  # the filled part at its minimum
        parts = " + ".join(f"{k} {v / GB:.1f}" for k, v in needed.items() if v)
        trial.problem = (f"stage '{stage.name}': {trial.need / GB:.1f} GB {unit} needed ({parts}), "
                         f"limit {trial.limit / GB:.1f} GB")
    elif w.host_memory is not None and trial.nodes and w.host_memory(trial.nodes) > node.memory:
        trial.fits = False
        trial.problem = (f"stage '{stage.name}': {w.host_memory(trial.nodes) / GB:.0f} GB of host memory per node "
                         f"for the offloaded optimizer, {node.name} has {node.memory / GB:.0f} GB")
    elif trial.fits and trial.need > ctx.assume["near_limit"] * trial.limit:
        trial.warning = (f"stage '{stage.name}': {trial.need / GB:.1f} GB of {trial.limit / GB:.1f} GB per device "
                         f"on {node.name} ({trial.need / trial.limit:.0%})")
    trial.hours = _hours(trial, node, mfu, inference_mfu, ctx)
    if trial.hours is not None and node.price_per_hour is not None:
        trial.cost = trial.hours * trial.nodes * node.price_per_hour
    return trial


def _place(stage: StagePlan, cluster: ClusterSpec, mfu: float, inference_mfu: float, spot: bool,
           ctx: PlanContext) -> None:
    w = stage.workload
    no_gpus = not any(n.gpus for n in cluster.nodes) and not cluster.adds_gpus  # as the stage will find at run time
    if w.gpu_optional and no_gpus:
        if w.on_cpu is not None:  # figures of its own on CPU (the contamination test's float32 actors)
            stage.workload = w = w.on_cpu
            w.notes.append("no GPU in the cluster: on CPU actors")
        else:  # use_gpu null on a cluster without GPUs
            w.device = "cpu"
            w.notes.append("no GPU in the cluster: trains on CPU workers (memory as estimated for GPU training)")
    if w.device == "driver":
        candidates = [cluster.head] if cluster.head else cluster.nodes[:1]
    elif w.device == "gpu":
        candidates = [n for n in cluster.nodes if n.gpus]
    else:  # CPU actors go to CPU nodes when there are any
        candidates = [n for n in cluster.nodes if not n.gpus and not n.head and n.cpus] or \
            [n for n in cluster.nodes if n.cpus]
    if not spot and any(not n.spot for n in candidates):
        candidates = [n for n in candidates if not n.spot]
    if not candidates:
        if cluster.growable:
            stage.fits, stage.problem = False, f"stage '{stage.name}': needs GPUs, the cluster has no GPU node type"
        else:  # a running cluster without GPU nodes now may get them from its autoscaler: not judged here
            stage.workload.notes.append("no GPU node in the cluster now: fit not checked")
        return
    trials = [_try(stage, node, mfu, inference_mfu, ctx) for node in candidates]
    fitting = [t for t in trials if t.fits is not False]
    if fitting:
        best = min(fitting, key=lambda t: (t.cost if t.cost is not None else math.inf, t.hours or 0.0))
        stage.workload.notes += [f"not on {t.node.name}: {t.problem.split(': ', 1)[1]}" for t in trials
                                 if t.limit and t.need > t.limit]  # memory misfits: what a cheaper node lacks
    else:  # the closest miss: the most memory per device
        best = max(trials, key=lambda t: (t.limit or 0.0) - t.need)
    stage.__dict__.update({k: v for k, v in best.__dict__.items() if k not in ("name", "kind", "status")})


# ---------------------------------------------------------------------------------------- schedule


def critical_path(plan: Plan) -> list[str]:
    """The longest chain of stages by hours (stages without an estimate count 0)."""
    best: dict[str, tuple[float, list[str]]] = {}
    for name in plan.stages:  # in pipeline order: parents first
        hours = plan.stages[name].hours or 0.0
        before = max((best[p] for p in sorted(plan.parents[name])), key=_longest, default=(0.0, []))
        best[name] = (before[0] + hours, before[1] + [name])
    return max(best.values(), key=_longest)[1] if best else []


def _longest(entry: tuple[float, list[str]]) -> tuple[float, int, list[str]]:
    """Hours, then stages, then names: ties between zero-hour chains resolve the same way every time."""
    return entry[0], len(entry[1]), entry[1]


def schedule(plan: Plan) -> float:
    """Hours from start to end when up to `parallel` stages run at once on the nodes the cluster has: the
    pipeline's rule (a stage starts when its nodes are free, or when nothing runs), longest chain first."""
    hours = {n: s.hours or 0.0 for n, s in plan.stages.items()}
    children: dict[str, list[str]] = {n: [] for n in plan.stages}
    for name, parents in plan.parents.items():
        for parent in parents:
            children[parent].append(name)
    chain: dict[str, float] = {}
    for name in reversed(list(plan.stages)):
        chain[name] = hours[name] + max((chain[c] for c in children[name]), default=0.0)
    free = {n.name: n.count for n in plan.cluster.nodes} if plan.cluster else {}
    done: set[str] = set()
    pending = sorted(plan.stages, key=lambda n: (-chain[n], n))
    running: list[tuple[float, str]] = []
    now = 0.0
    while pending or running:
        for name in list(pending):
            stage = plan.stages[name]
            if not plan.parents[name] <= done:
                continue
            node = stage.node.name if stage.node and stage.nodes else None
            room = node is None or free.get(node, 0) >= stage.nodes
            if running and (len(running) >= plan.parallel or not room):
                continue
            pending.remove(name)
            if node:
                free[node] = free.get(node, 0) - stage.nodes
            running.append((now + hours[name], name))
        running.sort()
        now, name = running.pop(0)
        done.add(name)
        stage = plan.stages[name]
        if stage.node and stage.nodes:
            free[stage.node.name] += stage.nodes
    return now


def check(plan: Plan, selected: list[str]) -> list[str]:
    """Raise a one-line ConfigError for the first selected stage that cannot fit; return the near-limit warnings."""
    for name in selected:
        stage = plan.stages[name]
        if stage.problem and stage.status in RUNNING:
            raise ConfigError(stage.problem)
    return [plan.stages[n].warning for n in selected if plan.stages[n].warning]
