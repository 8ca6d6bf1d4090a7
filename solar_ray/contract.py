"""The stage contract: what a stage asks of a cluster and where its Ray state lives, declared by the stage itself.

A stage module (registered in `solar_ray.stages.STAGES`) defines `Config` and `run`, and may declare, next to them:

    RAY_STORAGE_KEY = "run.storage_path"        # dotted config key the pipeline points at <output>/ray
    NAMING_KEYS = ("run.name",)                  # config keys that name things but do not change the artifact
    CACHE_KEY = "cache_dir"                      # dotted config key the pipeline points at <output>/cache/<kind>
    def needs(config) -> StageNeeds              # Ray workers/actors, CPUs and GPUs each, while it runs
    def ray_state(config) -> list[Path]          # local folders of its Ray Train run / Tune experiment
    def workload(config, models) -> Workload     # for the planner: memory per device by part, work, FLOPs, disk
    def model_config(config, sub, models) -> dict | None   # the HF config.json of the model its artifact holds
    def rows(config, sub, models) -> int | None            # training rows of the dataset its artifact holds

Each has a default, for a stage that works in the driver: no Ray workers, no Ray state, no workload, no model, no rows.
The pipeline, its dry-run, its scheduler and the planner (`solar_ray.plan`) read only this module, so a new
stage kind touches its own package and the registry, never the pipeline.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True)
class StageNeeds:
    """The CPUs and GPUs a stage reserves from Ray while it runs."""

    workers: int = 0                 # Ray Train workers or actors it starts (0: it works in the driver)
    cpus_per_worker: float = 0.0
    gpus_per_worker: float = 0.0     # on GPU: e.g. a vLLM engine actor takes tensor_parallel_size GPUs
    on_gpu: bool | None = False      # None: on GPUs when the cluster has any (training with use_gpu null)
    whole_cluster: bool = False      # sizes itself to the cluster (a sweep, an evaluation without `workers`)
    driver_cpus: float = 0.0         # reserved beside the workers (a Ray Data job's driver task)
    what: str = "in the driver process"   # one phrase for the dry-run, e.g. "16 x GPU workers, ZeRO-3"

    def demand(self, cluster: dict[str, float]) -> dict[str, float]:
        """CPUs and GPUs reserved on `cluster` ({"CPU": n, "GPU": n}); a whole-cluster stage asks for all of it."""
        if self.whole_cluster:
            return {"CPU": cluster.get("CPU", 1.0), "GPU": cluster.get("GPU", 0.0)}
        gpu = self.on_gpu if self.on_gpu is not None else cluster.get("GPU", 0.0) > 0
        return {"CPU": self.driver_cpus + self.workers * self.cpus_per_worker,
                "GPU": float(self.workers * self.gpus_per_worker) if gpu else 0.0}


@dataclass
class Workload:
    """What a stage does, as the planner prices it. Memory is per device: per GPU for `device="gpu"`, per actor
    (in host memory) for `device="cpu"`. Bytes and FLOPs throughout."""

    device: Literal["gpu", "cpu", "driver"] = "driver"
    devices: int | None = 0          # GPUs (gpu) or actors (cpu) it takes; None: as many as the cluster has
    per_worker: int = 1              # devices one worker needs on one node (a tensor-parallel engine's GPUs)
    gpu_optional: bool = False       # gpu, but on CPUs where the cluster has no GPU (training with use_gpu null)
    on_cpu: Workload | None = None   # gpu_optional: what it is on CPUs, where that differs (None: these figures)
    cpus_per_device: float = 1.0     # cpu: CPUs each actor reserves (actors per node = node CPUs / this)
    memory: dict[str, float] = field(default_factory=dict)   # part -> bytes per device
    fill: tuple[str, float, float] | None = None  # (part, share, at least): the part takes what is left of
    #                                               `share` of the device (vLLM's KV cache), and needs `at least`
    host_memory: Callable[[int], float] | None = None  # nodes -> host memory per node (ZeRO-Offload's optimizer)
    work: str = "-"                  # tokens or items processed, in words
    train_flops: float = 0.0         # FLOPs at the training MFU
    infer_flops: float = 0.0         # FLOPs at the inference MFU
    disk: dict[str, float] = field(default_factory=dict)     # part -> bytes written
    notes: list[str] = field(default_factory=list)            # assumptions this stage's figures rest on


DRIVER = StageNeeds()


def _module(config: Any):
    from solar_ray.stages import stage_module

    return stage_module(config.stage)


def needs(config: Any) -> StageNeeds:
    """The stage's declared needs; a stage that declares none works in the driver."""
    declared = getattr(_module(config), "needs", None)
    return declared(config) if declared else DRIVER


def ray_state(config: Any) -> list[Path]:
    """Local folders where the stage keeps Ray Train / Tune state (none for a cloud URI or a driver stage)."""
    declared = getattr(_module(config), "ray_state", None)
    return declared(config) if declared else []


def _declared_key(stage: str, attribute: str) -> str | None:
    from solar_ray.stages import STAGES, stage_module

    if stage not in STAGES:
        return None  # build_config reports the unknown stage
    return getattr(stage_module(stage), attribute, None)


def storage_key(stage: str) -> str | None:
    """The dotted config key of the stage's Ray storage path, if it keeps Ray state."""
    return _declared_key(stage, "RAY_STORAGE_KEY")


def cache_key(stage: str) -> str | None:
    """The dotted config key of the stage's cache of reusable results (e.g. an evaluation's per-model scores)."""
    return _declared_key(stage, "CACHE_KEY")


# What no stage's artifact depends on: where it is written, and whether an existing one is replaced.
PLACEMENT_KEYS = ("output", "force")


def naming_keys(config: Any) -> tuple[str, ...]:
    """Dotted config keys two stages may differ in and still make the same artifact: where it is written, where
    its Ray state is kept, and the names the stage declares (`NAMING_KEYS`: a Ray run's name, a file of values
    already applied to the config)."""
    places = tuple(key for key in (storage_key(config.stage), cache_key(config.stage)) if key)
    return PLACEMENT_KEYS + places + tuple(getattr(_module(config), "NAMING_KEYS", ()))


def workload(config: Any, models: Any) -> Workload:
    declared = getattr(_module(config), "workload", None)
    return declared(config, models) if declared else Workload()


def model_config(config: Any, sub: str, models: Any) -> dict[str, Any] | None:
    declared = getattr(_module(config), "model_config", None)
    return declared(config, sub, models) if declared else None


def rows(config: Any, sub: str, models: Any) -> int | None:
    declared = getattr(_module(config), "rows", None)
    return declared(config, sub, models) if declared else None


def describe_demand(demand: dict[str, float]) -> str:
    """'1 CPU', '8 CPU + 8 GPU', 'the whole cluster' (for a demand made against an infinite cluster) or '-'."""
    if math.inf in demand.values():
        return "the whole cluster"
    parts = [f"{demand[kind]:g} {kind}" for kind in ("CPU", "GPU") if demand.get(kind)]
    return " + ".join(parts) or "-"


def local_runs(storage: str, names: list[str]) -> list[Path]:
    """`<storage>/<name>` for each name, or nothing when the storage is a cloud URI (left alone)."""
    return [] if "://" in storage else [Path(storage) / name for name in names]
