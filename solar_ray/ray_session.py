"""Connect to Ray: the cluster named by RAY_ADDRESS (as `ray job submit` sets it), else the local cluster a
`ray start --head` on this machine recorded (joined, saying so), else a Ray of our own.

Our own local Ray is sized to the machine and quiet (warnings only). It starts no dashboard: several local Rays
may share a machine (parallel tests, a laptop's notebook), and the state API behind the dashboard cannot tell
them apart. `RAY_ADDRESS=local` always starts our own, even when a local cluster is running.
"""

from __future__ import annotations

import logging
import os
import socket
import sys


def init_ray(num_cpus: int | None = None, say=None, **kwargs) -> None:
    """Start or join Ray once per process; later calls are no-ops. `say` shows the one line on which Ray was joined
    or why a local one starts (default: stderr; the pipeline passes its console's, since it captures stderr)."""
    import ray

    say = say or (lambda line: print(line, file=sys.stderr))

    configure_ray_data()  # also when Ray was started by someone else (a test, a notebook): a driver-side setting
    if ray.is_initialized():
        return
    quiet_ray_data_console()
    # Ray Train replaces `print` in its workers with a logger call, which also fires while a library captures
    # stdout: `datasets` fingerprints TRL's map functions with dill, which disassembles them into a captured
    # stdout, and every SFT/DPO worker then logged pages of bytecode. Workers' prints still reach the driver.
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    # Ray Data's per-operator progress bars are the progress a user wants; the driver log noise is not.
    options = {"logging_level": logging.WARNING, "log_to_driver": True, **kwargs}
    address = os.environ.get("RAY_ADDRESS", "")
    if address and address != "local":
        ray.init(**options)  # ray.init reads RAY_ADDRESS itself
        return
    if address != "local":
        recorded, address_file = recorded_local_cluster()
        if recorded and gcs_answers(recorded):
            # Ray refuses sizing and dashboard settings for a cluster it joins; it has its own.
            say(f"solar-ray: joining the local Ray cluster at {recorded} (recorded in {address_file} by "
                "`ray start`); set RAY_ADDRESS=local to start a private one instead")
            try:
                # No address: Ray's own lookup finds the same file, and only then uses the token `ray start` saved.
                ray.init(**{k: v for k, v in options.items() if k not in JOIN_REFUSED})
                return
            except (ConnectionError, RuntimeError) as exc:  # gone since the probe, or its token is not ours
                say(f"solar-ray: could not join {recorded} ({exc}); starting a local Ray")
        elif recorded:
            say(f"solar-ray: the Ray cluster recorded in {address_file} ({recorded}) is gone; starting a "
                "local Ray")
    # One machine: nothing preempts it, so no preemption watcher actor per training run; and poll the workers
    # every 0.5 s, not 2 s, so a finished run is noticed sooner (each poll is cheap next to a training step).
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
    # No dashboard: Train runs leave out Ray's PlacementGroupCleaner, which needs one (see no_dashboard), and
    # export no Prometheus metrics, which nothing scrapes. Set here for runs this driver starts, and in the job's
    # env for those a Tune trial starts.
    local_env = {NO_DASHBOARD_ENV: "1", "RAY_TRAIN_METRICS_ENABLED": "0"}
    for key, value in local_env.items():
        os.environ.setdefault(key, value)
    runtime_env = {"worker_process_setup_hook": "solar_ray.ray_session.quiet_local_workers",
                   **options.pop("runtime_env", {})}
    runtime_env["env_vars"] = {**local_env, **runtime_env.get("env_vars", {})}
    # address="local": a new Ray even when the address file names one (stale, or RAY_ADDRESS=local).
    ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
             runtime_env=runtime_env, **options)


NO_DASHBOARD_ENV = "SOLAR_RAY_NO_DASHBOARD"  # set in our own local Ray's driver and workers


def no_dashboard() -> bool:
    """Whether this process works for a Ray of our own, which starts no dashboard (so no state API)."""
    return os.environ.get(NO_DASHBOARD_ENV) == "1"


def remote_cluster() -> bool:
    """Whether RAY_ADDRESS names a cluster (which may autoscale), rather than asking for a local Ray."""
    return os.environ.get("RAY_ADDRESS", "") not in ("", "local")


# ray.init keywords that size or configure a new Ray; ray.init raises ValueError for them when it joins one.
JOIN_REFUSED = {"num_cpus", "num_gpus", "resources", "labels", "object_store_memory", "include_dashboard",
                "dashboard_host", "dashboard_port", "_system_config"}


def recorded_local_cluster() -> tuple[str | None, str]:
    """The GCS address `ray start` last recorded on this machine and the file recording it (Ray's own lookup:
    $RAY_TMPDIR/ray, else $TMPDIR/ray, else /tmp/ray)."""
    # private library API, a plain use kept here: listed and checked in solar_ray/patches/__init__.py
    from ray._common.utils import get_ray_address_file

    address_file = get_ray_address_file(None)
    try:
        with open(address_file) as handle:
            return handle.read().strip() or None, address_file
    except OSError:
        return None, address_file


def gcs_answers(address: str, timeout_s: float = 2.0) -> bool:
    """Whether something listens at the GCS host:port (a dead head leaves its address file behind)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def quiet_local_workers() -> None:
    """Worker setup on the local Ray. Ray Train's placement-group cleaner asks the state API (no dashboard,
    no state API) every second and warns each time it fails; solar_ray.patches.ray_train_callbacks frees stopped
    trials' placement groups through actor handles instead, so the warning says nothing actionable here."""
    # private library API, a plain use kept here: listed and checked in solar_ray/patches/__init__.py
    cleaner = "ray.train.v2._internal.execution.controller.placement_group_cleaner"
    logging.getLogger(cleaner).setLevel(logging.ERROR)


def configure_ray_data() -> None:
    """Ray Data reads parquet through its first reader, not DataSourceV2 (Ray 2.60's default). Under V2 a union
    of parquet reads ran its file listings one after another, about 10 s each on 2 cores, and one small file took
    3.8 s (bench/bench_parquet_reader.py, 4 files of 100 rows: unioned 27.2 s against V1's 1.2 s, one file 3.8 s
    against 0.4). Every data stage unions its sources, the FLAN lookup its four sub-mixtures, the rehearsal's hub
    mirror holds parquet, and pretraining reads its data artifact. A public DataContext setting, set in the driver,
    where reads are planned; RAY_DATA_USE_DATASOURCE_V2, when set, wins."""
    from ray.data import DataContext

    if "RAY_DATA_USE_DATASOURCE_V2" not in os.environ:
        DataContext.get_current().use_datasource_v2 = False


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
