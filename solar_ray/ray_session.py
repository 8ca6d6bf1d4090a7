"""Connect to Ray: the cluster named by RAY_ADDRESS (as `ray job submit` sets it), else a local Ray.

The local Ray is sized to the machine, quiet (warnings only), and keeps its dashboard on loopback.
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
    # Ray Data's per-operator progress bars are the progress a user wants; the driver log noise is not.
    options = {"logging_level": logging.WARNING, "log_to_driver": True, **kwargs}
    if os.environ.get("RAY_ADDRESS"):
        ray.init(**options)  # ray.init reads RAY_ADDRESS itself
        return
    ray.init(
        num_cpus=num_cpus or os.cpu_count(),
        include_dashboard=False,
        dashboard_host="127.0.0.1",
        **options,
    )


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


def cluster_cpus() -> int:
    import ray

    return int(ray.cluster_resources().get("CPU", 1))


def cluster_gpus() -> int:
    import ray

    return int(ray.cluster_resources().get("GPU", 0))
