"""Connect to Ray: the cluster named by RAY_ADDRESS (as `ray job submit` sets it), else a local Ray.

The local Ray is sized to the machine and quiet (warnings only). It starts no dashboard: several local Rays
may share a machine (parallel tests, a laptop's notebook), and the state API behind the dashboard cannot tell
them apart.
"""

from __future__ import annotations

import logging
import os


def init_ray(num_cpus: int | None = None, **kwargs) -> None:
    """Start or join Ray once per process; later calls are no-ops."""
    import ray

    if ray.is_initialized():
        return
    quiet_ray_data_console()
    # Ray Train replaces `print` in its workers with a logger call, which also fires while a library captures
    # stdout: `datasets` fingerprints TRL's map functions with dill, which disassembles them into a captured
    # stdout, and every SFT/DPO worker then logged pages of bytecode. Workers' prints still reach the driver.
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    # Ray Data's per-operator progress bars are the progress a user wants; the driver log noise is not.
    options = {"logging_level": logging.WARNING, "log_to_driver": True, **kwargs}
    if os.environ.get("RAY_ADDRESS"):
        ray.init(**options)  # ray.init reads RAY_ADDRESS itself
        return
    # One machine: nothing preempts it, so no preemption watcher actor per training run; and poll the workers
    # every 0.5 s, not 2 s, so a finished run is noticed sooner (each poll is cheap next to a training step).
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
    runtime_env = {"worker_process_setup_hook": "solar_ray.ray_session.quiet_local_workers",
                   **options.pop("runtime_env", {})}
    ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, runtime_env=runtime_env, **options)


def quiet_local_workers() -> None:
    """Worker setup on the local Ray. Ray Train's placement-group cleaner asks the state API (no dashboard,
    no state API) every second and warns each time it fails; solar_ray.tune.orphans frees stopped trials'
    placement groups through actor handles instead, so the warning says nothing actionable here."""
    cleaner = "ray.train.v2._internal.execution.controller.placement_group_cleaner"
    logging.getLogger(cleaner).setLevel(logging.ERROR)


def quiet_ray_data_console() -> None:
    """Ray Data's execution plans and (off a terminal) its progress lines every 10 s go to the session's
    ray-data.log only; its warnings still reach the console. The stage progress solar-ray prints stays readable.
    Set RAY_DATA_LOG_LEVEL=INFO to see them on the console again."""
    if os.environ.get("RAY_DATA_LOG_LEVEL"):
        return
    import ray.data  # noqa: F401  (configures the 'ray.data' logger and its handlers)

    for handler in logging.getLogger("ray.data").handlers:
        if isinstance(handler, logging.StreamHandler):  # the console; SessionFileHandler writes the log file
            handler.setLevel(logging.WARNING)


def cluster_resources() -> dict[str, float]:
    """The cluster's CPUs and GPUs now (an autoscaling cluster may grow past this)."""
    import ray

    resources = ray.cluster_resources()
    return {"CPU": float(resources.get("CPU", 1)), "GPU": float(resources.get("GPU", 0))}


def cluster_cpus() -> int:
    import ray

    return int(ray.cluster_resources().get("CPU", 1))


def cluster_gpus() -> int:
    import ray

    return int(ray.cluster_resources().get("GPU", 0))
