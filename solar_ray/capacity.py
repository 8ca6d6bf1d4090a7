"""Will the Ray cluster hold a stage? Checked once Ray is joined, before the stage starts anything.

A stage states what it needs as Ray bundles (one per worker or actor: `{"CPU": 8, "GPU": 1}`), and
`ensure_capacity(stage, bundles)`:
- goes on at once when the cluster's nodes hold every bundle now (their totals: the stage may still queue
  behind others, but it will run);
- else, when the cluster has an autoscaler that can grow, asks it for the bundles
  (`ray.autoscaler.sdk.request_resources`) and waits for the nodes, printing what it waits for every minute;
- else fails at once with one line naming the stage, what it needs and what the cluster has. (Left to Ray, the
  stage's placement group or actors would wait forever without a word.)

Detecting an autoscaler the way Ray does: autoscaler v2 (and KubeRay's) publishes its node types in the GCS
(`ray._private.state.state.get_cluster_config()`, what Ray Train and Ray Data read); from it comes the most
the cluster can grow to, so a stage beyond even that fails at once too. Autoscaler v1 (`ray up`'s default,
`ray start --autoscaling-config`) publishes only its status (the `__autoscaling_status` key `ray status`
reads; every head runs it, a head without an autoscaling config in read-only mode), so its limits are unknown
here: the stage asks and waits.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass

from solar_ray.errors import SolarRayError

Bundle = dict[str, float]
REPORT_EVERY_S = 60.0


class CapacityError(SolarRayError):
    """The cluster cannot hold a stage and nothing can grow it."""


@dataclass(frozen=True)
class Autoscaler:
    """An autoscaler serving the cluster; `limits` is the most of each resource it can reach (None: unknown)."""

    limits: dict[str, float] | None

    def can_add(self, resource: str) -> bool:
        return self.limits is None or self.limits.get(resource, 0) > 0


def find_autoscaler() -> Autoscaler | None:
    """The cluster's autoscaler, or None when the cluster is fixed (a local Ray, a head started by hand)."""
    # private library API, a plain use kept here: listed and checked in solar_ray/patches/__init__.py
    import ray._private.ray_constants as ray_constants
    import ray._private.state as ray_state
    from ray.experimental.internal_kv import _internal_kv_get

    config = ray_state.state.get_cluster_config()  # autoscaler v2 / KubeRay: node types with their max counts
    if config is not None and any(group.max_count != 0 for group in config.node_group_configs):
        limits = ray_state.state.get_max_resources_from_cluster_config() or {}
        return Autoscaler(limits={key: float(value) for key, value in limits.items()})
    status = _internal_kv_get(ray_constants.DEBUG_AUTOSCALING_STATUS)  # autoscaler v1's monitor, if any
    if status and v1_can_launch(json.loads(status)):
        return Autoscaler(limits=None)
    return None


def v1_can_launch(status: dict) -> bool:
    """Is autoscaler v1's status that of a real autoscaler? Every `ray start --head` runs the v1 monitor, but
    without an autoscaling config it only mirrors the nodes it finds (Ray's readonly provider), naming each node
    type `node_<node id>`; a real one names them after its config's `available_node_types`."""
    report = status.get("autoscaler_report") or {}
    types = set((report.get("node_type_mapping") or {}).values()) | set(report.get("active_nodes") or {})
    return any(not name.startswith("node_") for name in types)


def node_totals() -> list[Bundle]:
    """Total resources of each live node."""
    import ray

    return [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]


def fits(bundles: list[Bundle], nodes: list[Bundle]) -> bool:
    """Can the nodes hold all bundles at once? First fit, largest bundles first (GPUs before CPUs)."""
    free = [dict(node) for node in nodes]
    for bundle in sorted(bundles, key=lambda b: (b.get("GPU", 0), b.get("CPU", 0)), reverse=True):
        for node in free:
            if all(node.get(key, 0) >= amount for key, amount in bundle.items()):
                for key, amount in bundle.items():
                    node[key] = node.get(key, 0) - amount
                break
        else:
            return False
    return True


def totals(bundles: list[Bundle]) -> Bundle:
    out: Counter = Counter()
    for bundle in bundles:
        out.update(bundle)
    return dict(out)


def describe_need(bundles: list[Bundle]) -> str:
    shapes = Counter(tuple(sorted((k, v) for k, v in b.items() if v)) for b in bundles)
    parts = [f"{count} x {{{', '.join(f'{k}: {_num(v)}' for k, v in shape)}}}" for shape, count in shapes.items()]
    return f"{' + '.join(parts)} ({_amounts(totals(bundles))})"


def describe_cluster(nodes: list[Bundle]) -> str:
    if not nodes:
        return "no live node"
    largest = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)))
    return f"{_amounts(totals(nodes))} on {len(nodes)} node(s), the largest with {_amounts(largest)}"


def _amounts(resources: Bundle) -> str:
    return ", ".join(f"{_num(resources.get(key, 0))} {key}" for key in ("GPU", "CPU"))


def _num(value: float) -> str:
    return f"{value:g}"


# A driver may run several stages at once (`pipeline --parallel`), and each request_resources call replaces the
# driver's previous one: the request sent is the sum of every waiting stage's bundles.
_REQUESTS: dict[str, list[Bundle]] = {}
_LOCK = threading.Lock()


def _request(stage: str, bundles: list[Bundle] | None) -> None:
    from ray.autoscaler.sdk import request_resources

    with _LOCK:
        if bundles is None:
            _REQUESTS.pop(stage, None)
        else:
            _REQUESTS[stage] = bundles
        request_resources(bundles=[b for waiting in _REQUESTS.values() for b in waiting])


def ensure_capacity(stage: str, bundles: list[Bundle], poll_s: float = 2.0, report_every_s: float = REPORT_EVERY_S,
                    timeout_s: float | None = None) -> None:
    """Return once the cluster holds `bundles` (growing it through its autoscaler); raise CapacityError when
    it cannot. `stage` names the stage in messages ("stage 'sft_v1'")."""
    bundles = [{k: float(v) for k, v in b.items() if v} for b in bundles]
    nodes = node_totals()
    if fits(bundles, nodes):
        return
    need = describe_need(bundles)
    autoscaler = find_autoscaler()
    if autoscaler is None:
        raise CapacityError(f"{stage} needs {need}, but the Ray cluster has {describe_cluster(nodes)} and no "
                            "autoscaler to add nodes; ask for less or add nodes")
    reach = autoscaler.limits
    if reach is not None and not all(reach.get(k, 0) >= v for k, v in totals(bundles).items() if k in ("GPU", "CPU")):
        raise CapacityError(f"{stage} needs {need}, more than the cluster's autoscaler can reach "
                            f"({_amounts(reach)} at most); ask for less or raise max_workers")
    _request(stage, bundles)
    started = last_report = time.monotonic()
    print(f"{stage}: waiting for the autoscaler to add nodes: needs {need}; the cluster has "
          f"{describe_cluster(nodes)}", flush=True)
    try:
        while not fits(bundles, nodes := node_totals()):
            now = time.monotonic()
            if timeout_s is not None and now - started > timeout_s:
                raise CapacityError(f"{stage}: the autoscaler added no room for {need} in {timeout_s:.0f} s; the "
                                    f"cluster has {describe_cluster(nodes)}")
            if now - last_report >= report_every_s:
                last_report = now
                print(f"{stage}: still waiting ({now - started:.0f} s) for {need}; the cluster has "
                      f"{describe_cluster(nodes)}", flush=True)
            time.sleep(poll_s)
        print(f"{stage}: the cluster now holds {need} (after {time.monotonic() - started:.0f} s)", flush=True)
    finally:
        _request(stage, None)  # a standing request would keep the nodes up after the stage ends


def gpus_obtainable() -> bool:
    """Does the cluster have GPUs now, or an autoscaler that can add some?"""
    if any(node.get("GPU", 0) for node in node_totals()):
        return True
    autoscaler = find_autoscaler()
    return autoscaler is not None and autoscaler.can_add("GPU")


def gpus_reachable() -> float:
    """GPUs the cluster has now, or the most its autoscaler can reach when that is known and larger."""
    now = totals(node_totals()).get("GPU", 0.0)
    autoscaler = find_autoscaler() if not now else None
    if autoscaler is not None and autoscaler.limits:
        return max(now, autoscaler.limits.get("GPU", 0.0))
    return now
